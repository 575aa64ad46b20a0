//! The small grammar SIP headers share (RFC 3261 §25.1): `;name=value` parameters,
//! tokens, `%XX` escapes, quoted strings, and comma-separated lists. Nothing here knows
//! which header it is reading.

use std::fmt;

/// What went wrong reading a piece of syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub &'static str);

/// `;name=value` or `;name` parameters, in order, names as written.
pub type Params = Vec<(String, Option<String>)>;

pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a Option<String>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A parameter's value, when it has one.
pub fn param_value<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    param(params, name).and_then(|v| v.as_deref())
}

pub fn set_param(params: &mut Params, name: &str, value: Option<String>) {
    match params
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some(slot) => slot.1 = value,
        None => params.push((name.to_owned(), value)),
    }
}

pub fn write_params(f: &mut impl fmt::Write, params: &Params) -> fmt::Result {
    for (name, value) in params {
        match value {
            Some(v) => write!(f, ";{name}={v}")?,
            None => write!(f, ";{name}")?,
        }
    }
    Ok(())
}

/// Parses `;a=b;c` (the leading `;` included) into params.
pub fn parse_params(raw: &str) -> Result<Params, SyntaxError> {
    let mut params = Params::new();
    if raw.is_empty() {
        return Ok(params);
    }
    let rest = raw
        .strip_prefix(';')
        .ok_or(SyntaxError("parameters must start with ;"))?;
    for part in rest.split(';') {
        let part = part.trim();
        if part.is_empty() {
            return Err(SyntaxError("empty parameter"));
        }
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
            None => (part, None),
        };
        // A URI parameter's name is `1*paramchar` (RFC 3261 §25.1), wider than a token;
        // header parameters narrow it (`parse_header_params`).
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| is_token_byte(b) || b"()[]/:&$".contains(&b))
        {
            return Err(SyntaxError("bad parameter name"));
        }
        params.push((name.to_owned(), value));
    }
    Ok(params)
}

/// Parses the parameters of a header value (`generic-param`, RFC 3261 §25.1): as
/// [`parse_params`], and each value a token, a host or a quoted string (`tag` and
/// `branch` a token), so that a value with spaces, `@` or `/` in it (`tag=a b@c`) is
/// refused rather than carried on.
pub fn parse_header_params(raw: &str) -> Result<Params, SyntaxError> {
    let params = parse_params(raw)?;
    let token = |v: &str| !v.is_empty() && v.bytes().all(is_token_byte);
    let gen_value = |v: &str| {
        let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
        quoted || (!v.is_empty() && v.bytes().all(|b| is_token_byte(b) || b"[]:".contains(&b)))
    };
    for (name, value) in &params {
        if !token(name) {
            return Err(SyntaxError("bad parameter name"));
        }
        let Some(v) = value else { continue };
        // `tag` and `branch` are tokens (RFC 3261 §20.20, §20.42); others any gen-value.
        let ok = if name.eq_ignore_ascii_case("tag") || name.eq_ignore_ascii_case("branch") {
            token(v)
        } else {
            gen_value(v)
        };
        if !ok {
            return Err(SyntaxError("bad parameter value"));
        }
    }
    Ok(params)
}

/// RFC 3261 `token` characters.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Whether every `%` starts a `%XX` escape.
pub fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Decodes `%XX` escapes (invalid ones are kept as written).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1), b.get(i + 2))
            && let (Some(h), Some(l)) = ((*h as char).to_digit(16), (*l as char).to_digit(16))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Index of the first `needle` outside double quotes.
pub fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == needle {
            return Some(i);
        }
    }
    None
}

/// Removes quoted-pair escapes from the inside of a quoted string.
pub fn unquote(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits a header value at top-level commas (outside quotes and angle brackets).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_quotes, mut escaped, mut depth, mut start) = (false, false, 0u32, 0);
    for (i, b) in value.bytes().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_only_at_top_level_commas() {
        let v = "<sip:a@1.2.3.4>;expires=5, \"x, y\" <sip:b@h?a=1,2>;q=0.5 ,sip:c@d";
        assert_eq!(
            split_list(v),
            [
                "<sip:a@1.2.3.4>;expires=5",
                "\"x, y\" <sip:b@h?a=1,2>;q=0.5",
                "sip:c@d"
            ]
        );
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn parameters_parse_in_order_and_write_back() {
        let params = parse_params(";transport=tcp;lr;Tag = x").unwrap();
        assert_eq!(param_value(&params, "TRANSPORT"), Some("tcp"));
        assert_eq!(param(&params, "lr"), Some(&None));
        assert_eq!(param_value(&params, "tag"), Some("x"));
        let mut out = String::new();
        write_params(&mut out, &params).unwrap();
        assert_eq!(out, ";transport=tcp;lr;Tag=x");
        assert!(parse_params("transport=tcp").is_err());
        assert!(parse_params(";;").is_err());
        assert!(parse_params(";a b=c").is_err());
    }

    #[test]
    fn escapes_and_quotes() {
        assert_eq!(unescape("a%20b%zz"), "a b%zz");
        assert!(valid_escapes("a%20b") && !valid_escapes("a%2"));
        assert_eq!(unquote(r#"say \"hi\""#), r#"say "hi""#);
        assert_eq!(find_unquoted(r#""a<b" <c>"#, b'<'), Some(6));
    }
}
