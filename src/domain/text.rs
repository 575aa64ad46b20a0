//! Names people read on consoles and phone screens, and the characters they may hold.
//!
//! A name is shown in a reception console, in a phone's display and in SIP `From`
//! display names. Characters that reorder the text around them (bidirectional
//! controls), break it into lines, or show nothing at all would let a name spoof another
//! ("Alice" written backwards behind U+202E) or blank a screen, so they are refused here,
//! once, for every field that holds such a name.

use super::ValidationError;

/// Longest name, in characters (after trimming).
pub const MAX_NAME_CHARS: usize = 64;

/// Bidirectional formatting characters (Unicode UAX #9): embeddings and overrides
/// U+202A–U+202E, isolates U+2066–U+2069, and the implicit marks LRM, RLM and ALM.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: not control characters to
/// Rust, but line breaks to every renderer (and to JavaScript string literals).
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// Deprecated format characters U+206A–U+206F (they switch shaping and digit forms of
/// the text that follows, much as bidi controls do).
fn is_deprecated_format(c: char) -> bool {
    matches!(c, '\u{206A}'..='\u{206F}')
}

/// Characters that take up no visible space of their own: zero-width and joining
/// characters, invisible operators, the byte-order mark, variation selectors, tags,
/// Hangul and Braille fillers. Allowed inside a name (ZWJ builds emoji and shapes Indic
/// scripts), but a name of only these shows nothing.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Whether `c` shows something: neither whitespace nor an invisible character.
fn is_visible(c: char) -> bool {
    !c.is_whitespace() && !is_invisible(c)
}

/// A name for people to read: trimmed of surrounding whitespace, 1 to 64 characters,
/// at least one of them visible, and none of: control characters (C0, DEL, C1, which
/// includes tab, CR, LF and NEL), bidirectional controls, U+2028/U+2029, or the
/// deprecated format characters U+206A–U+206F. The refused characters are refused
/// anywhere, the ends included: trimming does not quietly drop them.
pub fn parse_name(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    if raw.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    if raw
        .chars()
        .any(|c| is_bidi_control(c) || is_deprecated_format(c))
    {
        return Err(ValidationError::new(
            field,
            "must not contain bidirectional or format control characters \
             (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+206F)",
        ));
    }
    if raw.chars().any(is_line_separator) {
        return Err(ValidationError::new(
            field,
            "must not contain line or paragraph separators (U+2028, U+2029)",
        ));
    }
    let trimmed = raw.trim();
    if !(1..=MAX_NAME_CHARS).contains(&trimmed.chars().count()) {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if !trimmed.chars().any(is_visible) {
        return Err(ValidationError::new(
            field,
            "must contain a visible character (not only spaces or zero-width characters)",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> String {
        let err = parse_name("name", raw).expect_err(raw);
        assert_eq!(err.field, "name");
        err.message
    }

    #[test]
    fn ordinary_names_in_any_script_are_kept_trimmed() {
        for (raw, kept) in [
            ("  Zoë  ", "Zoë"),
            ("Front desk", "Front desk"),
            ("\u{00A0}Ana\u{3000}", "Ana"),
            ("محمد", "محمد"),
            ("שרה כהן", "שרה כהן"),
            ("李小龙", "李小龙"),
            ("O'Brien-Smith (Sales)", "O'Brien-Smith (Sales)"),
        ] {
            assert_eq!(parse_name("name", raw).unwrap(), kept, "{raw:?}");
        }
    }

    #[test]
    fn joiners_and_selectors_are_allowed_beside_visible_characters() {
        // ZWJ emoji sequence, a variation selector, and ZWNJ as Persian spells with it.
        for raw in [
            "👩\u{200D}💻 Help desk",
            "☎\u{FE0F} Reception",
            "می\u{200C}خواهم",
        ] {
            assert!(parse_name("name", raw).is_ok(), "{raw:?}");
        }
    }

    #[test]
    fn length_is_1_to_64_characters_after_trimming() {
        assert!(parse_name("name", &"é".repeat(64)).is_ok());
        assert!(refused(&"é".repeat(65)).contains("1 to 64"));
        assert!(refused("").contains("1 to 64"));
        assert!(refused("   ").contains("1 to 64"));
    }

    #[test]
    fn control_characters_are_refused_even_at_the_ends() {
        for raw in [
            "Bob\nSmith",
            "Bob\u{7}",
            "Tab\there",
            "Alice\n",
            "\rAlice",
            "A\u{85}B",
            "A\u{7F}",
        ] {
            assert!(refused(raw).contains("control characters"), "{raw:?}");
        }
    }

    #[test]
    fn every_bidirectional_control_is_refused() {
        let bidi = ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{200E}', '\u{200F}', '\u{061C}']);
        for c in bidi {
            // "Alice" shown as "ecilA" would need only a U+202E in front.
            for raw in [
                format!("{c}Alice"),
                format!("Al{c}ice"),
                format!("Alice{c}"),
            ] {
                assert!(refused(&raw).contains("bidirectional"), "{raw:?}");
            }
        }
    }

    #[test]
    fn deprecated_format_characters_are_refused() {
        for c in '\u{206A}'..='\u{206F}' {
            assert!(refused(&format!("A{c}B")).contains("format"), "{c:?}");
        }
    }

    #[test]
    fn line_and_paragraph_separators_are_refused_even_at_the_ends() {
        for raw in ["Bob\u{2028}Smith", "Bob\u{2029}", "\u{2028}Bob"] {
            assert!(refused(raw).contains("separators"), "{raw:?}");
        }
    }

    #[test]
    fn a_name_needs_a_visible_character() {
        for raw in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{2060}\u{FEFF}",
            "\u{00AD}",
            " \u{200B} ",
            "\u{3164}\u{3164}",
            "\u{2800}",
            "\u{FE0F}",
            "\u{E0041}\u{E0042}",
        ] {
            assert!(refused(raw).contains("visible"), "{raw:?}");
        }
        assert_eq!(parse_name("name", "\u{200B}B").unwrap(), "\u{200B}B");
    }

    #[test]
    fn the_error_names_the_field_it_was_given() {
        let err = parse_name("callerIdName", "\u{202E}x").unwrap_err();
        assert_eq!(err.field, "callerIdName");
    }
}
