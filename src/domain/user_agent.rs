//! Device classification: what kind of SIP device a registration is, read from its User-Agent.

use serde::Serialize;

use DeviceType::{Hardware, Mobile, Softphone, Webrtc};
use Find::{Contains, Prefix, Word};
use Model::{Cisco, Edition, Name, Next, Polycom};

/// What kind of device registered: a desk phone, a desktop app, a browser or a phone app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    /// A desk phone, DECT base or ATA.
    Hardware,
    /// A desktop SIP app (or a test tool such as SIPp).
    Softphone,
    /// A browser phone speaking SIP over WebSocket.
    Webrtc,
    /// A SIP app on a phone or tablet.
    Mobile,
}

impl DeviceType {
    /// Every device type, in display order.
    pub const ALL: [DeviceType; 4] = [Hardware, Softphone, Webrtc, Mobile];

    /// The wire name: "hardware", "softphone", "webrtc" or "mobile".
    pub fn as_str(self) -> &'static str {
        match self {
            Hardware => "hardware",
            Softphone => "softphone",
            Webrtc => "webrtc",
            Mobile => "mobile",
        }
    }

    /// The inverse of [`as_str`](Self::as_str); `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

/// What the User-Agent tells about a registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The kind of device.
    pub device_type: DeviceType,
    /// The vendor in its usual spelling ("Yealink", "CounterPath"), if recognised.
    pub manufacturer: Option<String>,
    /// The product model ("SIP-T54W", "VVX 450") or else the product name ("Linphone").
    pub model: Option<String>,
    /// The MAC address when the UA carries one, as "00:15:65:aa:bb:cc".
    pub mac_address: Option<String>,
}

/// `user_agent` is the raw User-Agent header value (may be empty); `via_websocket` is true when
/// the device registered over SIP-over-WebSocket (then it is a browser phone: Webrtc unless the
/// UA says mobile).
pub fn classify(user_agent: &str, via_websocket: bool) -> DeviceInfo {
    let ua = user_agent.trim();
    // ASCII-only lowercasing keeps byte offsets, so positions found in `lower` slice `ua`.
    let lower = ua.to_ascii_lowercase();
    let hit = RULES.iter().find_map(|&(find, maker, kind, model)| {
        let end = find.end_in(&lower)?;
        Some((maker, kind, model.read(ua, ua.get(end..).unwrap_or(""))))
    });
    let (manufacturer, kind, model) = match hit {
        Some((maker, kind, model)) => (Some(maker.to_string()), kind, model),
        None => (None, Softphone, None),
    };
    // A mobile hint turns an app into a mobile app, but an Android desk phone stays hardware.
    let mobile = kind == Mobile || (says_mobile(&lower) && (via_websocket || kind != Hardware));
    let device_type = if mobile {
        Mobile
    } else if via_websocket {
        Webrtc
    } else {
        kind
    };
    DeviceInfo {
        device_type,
        manufacturer,
        model,
        mac_address: mac_address(ua),
    }
}

/// How a rule spots its vendor in the lowercased UA.
#[derive(Clone, Copy)]
enum Find {
    /// The UA starts with this.
    Prefix(&'static str),
    /// The UA contains this anywhere.
    Contains(&'static str),
    /// The UA contains this as a whole word (no letter or digit on either side).
    Word(&'static str),
}

impl Find {
    /// The byte offset just past the match in `lower`, if it matches.
    fn end_in(self, lower: &str) -> Option<usize> {
        match self {
            Prefix(needle) => lower.starts_with(needle).then_some(needle.len()),
            Contains(needle) => lower.find(needle).map(|at| at + needle.len()),
            Word(needle) => lower
                .match_indices(needle)
                .map(|(at, _)| at)
                .find(|&at| {
                    let before = at.checked_sub(1).is_some_and(|i| alnum_at(lower, i));
                    !before && !alnum_at(lower, at + needle.len())
                })
                .map(|at| at + needle.len()),
        }
    }
}

/// How a rule reads the model out of the UA.
#[derive(Clone, Copy)]
enum Model {
    /// A fixed product name.
    Name(&'static str),
    /// The token right after the vendor ("Yealink SIP-T54W 96.86.0.70" → "SIP-T54W").
    Next,
    /// The product name plus the edition word after it ("Bria 6 release 6.5" → "Bria 6").
    Edition(&'static str),
    /// Polycom's "<Vendor><Family>-<Model>-UA/<version>" token ("VVX_450" → "VVX 450").
    Polycom,
    /// Like `Next`, with "CP8845" read as "CP-8845".
    Cisco,
}

impl Model {
    /// The model, given the whole UA and the part after the vendor match.
    fn read(self, ua: &str, rest: &str) -> Option<String> {
        match self {
            Name(name) => Some(name.to_string()),
            Next => next_model(rest).map(str::to_string),
            Edition(name) => {
                let word = first_token(rest).split('.').next().unwrap_or("");
                let edition = plausible(word) && !word.eq_ignore_ascii_case("release");
                Some(if edition {
                    format!("{name} {word}")
                } else {
                    name.to_string()
                })
            }
            Polycom => ua
                .split_whitespace()
                .filter(|tok| tok.to_ascii_lowercase().contains("-ua"))
                .find_map(|tok| tok.split('-').nth(1).filter(|m| plausible(m)))
                .map(|m| m.replace('_', " ")),
            Cisco => next_model(rest).map(|tok| match (tok.get(..2), tok.get(2..)) {
                (Some(cp), Some(num))
                    if cp.eq_ignore_ascii_case("cp") && num.starts_with(is_digit) =>
                {
                    format!("CP-{num}")
                }
                _ => tok.to_string(),
            }),
        }
    }
}

/// Vendor rules, first match wins: specific products before their vendor's catch-all.
#[rustfmt::skip]
const RULES: &[(Find, &str, DeviceType, Model)] = &[
    // Desk phones, DECT and ATAs.
    (Contains("polycom"),          "Polycom",       Hardware,  Polycom),
    (Prefix("poly"),               "Poly",          Hardware,  Polycom),
    (Contains("yealink"),          "Yealink",       Hardware,  Next),
    (Contains("grandstream wave"), "Grandstream",   Mobile,    Name("Wave")),
    (Contains("grandstream"),      "Grandstream",   Hardware,  Next),
    (Contains("jabber"),           "Cisco",         Softphone, Name("Jabber")),
    (Contains("cisco"),            "Cisco",         Hardware,  Cisco),
    (Contains("linksys"),          "Linksys",       Hardware,  Next),
    (Contains("snom"),             "Snom",          Hardware,  Next),
    (Contains("fanvil"),           "Fanvil",        Hardware,  Next),
    (Contains("obihai"),           "Obihai",        Hardware,  Next),
    (Contains("panasonic"),        "Panasonic",     Hardware,  Next),
    (Contains("aastra"),           "Aastra",        Hardware,  Next),
    (Contains("mitel"),            "Mitel",         Hardware,  Next),
    (Contains("htek"),             "Htek",          Hardware,  Next),
    (Contains("gigaset"),          "Gigaset",       Hardware,  Next),
    (Contains("avaya ix"),         "Avaya",         Softphone, Name("IX Workplace")),
    (Contains("avaya equinox"),    "Avaya",         Softphone, Name("Equinox")),
    (Contains("avaya"),            "Avaya",         Hardware,  Next),
    // Apps: desktop unless the UA hints at a phone OS (see `says_mobile`).
    (Contains("zoiper"),           "Zoiper",        Softphone, Name("Zoiper")),
    (Prefix("z "),                 "Zoiper",        Softphone, Edition("Zoiper")),
    (Word("bria"),                 "CounterPath",   Softphone, Edition("Bria")),
    (Contains("x-lite"),           "CounterPath",   Softphone, Name("X-Lite")),
    (Contains("eyebeam"),          "CounterPath",   Softphone, Name("eyeBeam")),
    (Contains("linphoneios"),      BELLEDONNE,      Mobile,    Name("Linphone")),
    (Contains("linphone"),         BELLEDONNE,      Softphone, Name("Linphone")),
    (Contains("baresip"),          "baresip",       Softphone, Name("baresip")),
    (Contains("microsip"),         "MicroSIP",      Softphone, Name("MicroSIP")),
    (Word("sipp"),                 "SIPp",          Softphone, Name("SIPp")),
    (Prefix("telephone"),          "64 Characters", Softphone, Name("Telephone")),
    (Contains("jitsi"),            "Jitsi",         Softphone, Name("Jitsi")),
    (Contains("onesip"),           "Onesip",        Softphone, Name("Onesip")),
    (Contains("3cx"),              "3CX",           Softphone, Name("3CX")),
    (Contains("groundwire"),       "Acrobits",      Mobile,    Name("Groundwire")),
    (Contains("acrobits"),         "Acrobits",      Mobile,    Edition("Acrobits")),
    // Browser stacks.
    (Contains("jssip"),            "JsSIP",         Webrtc,    Name("JsSIP")),
    (Contains("sip.js"),           "SIP.js",        Webrtc,    Name("SIP.js")),
    (Contains("sipml5"),           "Doubango",      Webrtc,    Name("sipML5")),
];

const BELLEDONNE: &str = "Belledonne Communications";

/// Models longer than this are noise, not a product name.
const MAX_MODEL: usize = 32;

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn alnum_at(s: &str, i: usize) -> bool {
    s.as_bytes().get(i).is_some_and(u8::is_ascii_alphanumeric)
}

/// True when the UA names a phone or tablet OS.
fn says_mobile(lower: &str) -> bool {
    ["android", "iphone", "ipad"]
        .iter()
        .any(|os| lower.contains(os))
        || Word("ios").end_in(lower).is_some()
}

/// A short run of printable ASCII: something that can be a model name.
fn plausible(tok: &str) -> bool {
    (1..=MAX_MODEL).contains(&tok.len()) && tok.bytes().all(|b| b.is_ascii_graphic())
}

/// "1.0.11.3", "6.3.1": a version, not a model.
fn is_version(tok: &str) -> bool {
    tok.starts_with(is_digit) && tok.contains('.')
}

/// The first token of `rest`, skipping the separator after a vendor name.
fn first_token(rest: &str) -> &str {
    rest.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '/' | '-' | '_'))
        .split(|c: char| c.is_whitespace() || matches!(c, '/' | '(' | ';' | ','))
        .next()
        .unwrap_or("")
}

/// The model token after a vendor name, without a trailing "-<version>" ("OBi202-3.2.2").
fn next_model(rest: &str) -> Option<&str> {
    let tok = first_token(rest);
    let tok = match tok.rsplit_once('-') {
        Some((head, tail)) if is_version(tail) => head,
        _ => tok,
    };
    (plausible(tok) && !is_version(tok)).then_some(tok)
}

/// The first MAC in the UA ("00:15:65:AA:BB:CC", "00-15-65-...", "000b82aabbcc", "MAC:..."),
/// as lowercase colon-separated pairs.
fn mac_address(ua: &str) -> Option<String> {
    ua.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | ';' | ',' | '='))
        .find_map(|tok| {
            let tok = match tok.get(..4) {
                Some(p) if p.eq_ignore_ascii_case("mac:") => tok.get(4..).unwrap_or(""),
                _ => tok,
            };
            parse_mac(tok)
        })
}

/// One token as a MAC: 12 hex digits, or 6 hex pairs joined by ':' or '-'.
fn parse_mac(tok: &str) -> Option<String> {
    let bytes = tok.as_bytes();
    let hex: Vec<u8> = match bytes.len() {
        12 => bytes.to_vec(),
        17 => {
            let sep = *bytes.get(2)?;
            let seps_ok = bytes.iter().skip(2).step_by(3).all(|&b| b == sep);
            if !matches!(sep, b':' | b'-') || !seps_ok {
                return None;
            }
            let pairs = bytes.iter().enumerate().filter(|(i, _)| i % 3 != 2);
            pairs.map(|(_, &b)| b).collect()
        }
        _ => return None,
    };
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut mac = String::with_capacity(17);
    for (i, b) in hex.iter().enumerate() {
        if i > 0 && i % 2 == 0 {
            mac.push(':');
        }
        mac.push(char::from(b.to_ascii_lowercase()));
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expect! { ua => type, manufacturer, model; ... }` for UAs registered without WebSocket.
    macro_rules! expect {
        ($($ua:expr => $ty:expr, $maker:expr, $model:expr;)*) => {$(
            let info = classify($ua, false);
            let got = (info.device_type, info.manufacturer.as_deref(), info.model.as_deref());
            assert_eq!(got, ($ty, Some($maker), Some($model)), "{}", $ua);
        )*};
    }

    #[test]
    fn polycom_desk_phones_are_hardware_with_model() {
        expect! {
            "PolycomVVX-VVX_450-UA/6.3.1.8427"      => Hardware, "Polycom", "VVX 450";
            "PolycomSoundPointIP-SPIP_331-UA/4.0.4" => Hardware, "Polycom", "SPIP 331";
            "Polycom/3.2.3 PolycomSoundPointIP-SPIP_550-UA/3.2.3" => Hardware, "Polycom", "SPIP 550";
            "PolyEdge-Edge_E450-UA/8.0.0.1"         => Hardware, "Poly",    "Edge E450";
        }
        let no_ua_token = classify("Polycom HDX 8000", false);
        assert_eq!(
            (no_ua_token.device_type, no_ua_token.model),
            (Hardware, None)
        );
    }

    #[test]
    fn yealink_desk_phones_are_hardware_with_model() {
        expect! {
            "Yealink SIP-T54W 96.86.0.70" => Hardware, "Yealink", "SIP-T54W";
            "Yealink SIP-T46S 66.86.0.15" => Hardware, "Yealink", "SIP-T46S";
            "Yealink W60B 77.85.0.25"     => Hardware, "Yealink", "W60B";
        }
    }

    #[test]
    fn grandstream_phones_and_atas_are_hardware_and_wave_is_mobile() {
        expect! {
            "Grandstream GXP2170 1.0.11.3" => Hardware, "Grandstream", "GXP2170";
            "Grandstream HT801 1.0.27.2"   => Hardware, "Grandstream", "HT801";
            "Grandstream Wave 1.0.9"       => Mobile,   "Grandstream", "Wave";
        }
    }

    #[test]
    fn cisco_phones_and_gateways_are_hardware_and_jabber_is_a_softphone() {
        expect! {
            "Cisco-CP8845/11.0"             => Hardware,  "Cisco",   "CP-8845";
            "Cisco/SPA504G-7.6.2"           => Hardware,  "Cisco",   "SPA504G";
            "Cisco-SIPGateway/IOS-12.x"     => Hardware,  "Cisco",   "SIPGateway";
            "Cisco-CP-8845-3PCC/11.3.1"     => Hardware,  "Cisco",   "CP-8845-3PCC";
            "Linksys/SPA942-6.1.5(a)"       => Hardware,  "Linksys", "SPA942";
            "Cisco Jabber for Windows 14.1" => Softphone, "Cisco",   "Jabber";
        }
    }

    #[test]
    fn snom_and_fanvil_phones_are_hardware_with_model() {
        expect! {
            "snom D785/10.1.73.16" => Hardware, "Snom",   "D785";
            "snom300/8.7.5.35"     => Hardware, "Snom",   "300";
            "Fanvil X4U 2.12.2"    => Hardware, "Fanvil", "X4U";
        }
    }

    #[test]
    fn obihai_panasonic_and_avaya_phones_are_hardware_but_avaya_apps_are_not() {
        expect! {
            "OBIHAI/OBi202-3.2.2"               => Hardware,  "Obihai",    "OBi202";
            "Panasonic_KX-UT136/01.133"         => Hardware,  "Panasonic", "KX-UT136";
            "Avaya J179 IP Phone 4.0.10.3.2"    => Hardware,  "Avaya",     "J179";
            "Avaya IX Workplace/3.30 (Windows)" => Softphone, "Avaya",     "IX Workplace";
            "Avaya Equinox/3.4 (iOS 14.2)"      => Mobile,    "Avaya",     "Equinox";
        }
    }

    #[test]
    fn gigaset_htek_aastra_and_mitel_phones_are_hardware_with_model() {
        expect! {
            "Gigaset N510 IP PRO/42.250.00.000.000" => Hardware, "Gigaset", "N510";
            "Htek UC926E 2.42.6.4.56"               => Hardware, "Htek",    "UC926E";
            "Aastra 6757i/3.3.1.4322"               => Hardware, "Aastra",  "6757i";
            "Mitel 6867i/5.1.0.1024"                => Hardware, "Mitel",   "6867i";
        }
    }

    #[test]
    fn zoiper_desktop_is_a_softphone_and_its_phone_apps_are_mobile() {
        expect! {
            "Z 5.6.1 v2.10.18.3"  => Softphone, "Zoiper", "Zoiper 5";
            "Zoiper rv2.10.8.2"   => Softphone, "Zoiper", "Zoiper";
            "Zoiper for Android"  => Mobile,    "Zoiper", "Zoiper";
            "Zoiper for iOS 2.10" => Mobile,    "Zoiper", "Zoiper";
        }
    }

    #[test]
    fn bria_desktop_is_a_softphone_and_its_phone_apps_are_mobile() {
        expect! {
            "Bria 6 release 6.5.0 stamp 108225" => Softphone, "CounterPath", "Bria 6";
            "Bria iOS release 6.3.1"            => Mobile,    "CounterPath", "Bria iOS";
            "Bria Android 6.6"                  => Mobile,    "CounterPath", "Bria Android";
            "Bria release 2.3"                  => Softphone, "CounterPath", "Bria";
            "X-Lite release 5.0.0 stamp 67284"  => Softphone, "CounterPath", "X-Lite";
        }
    }

    #[test]
    fn linphone_desktop_is_a_softphone_and_its_phone_apps_are_mobile() {
        expect! {
            "Linphone/5.2.5 (belle-sip/5.2.94)"   => Softphone, BELLEDONNE, "Linphone";
            "LinphoneAndroid/5.1 (Pixel 7) LinphoneSDK/5.2" => Mobile, BELLEDONNE, "Linphone";
            "Linphone iPhone/4.6 (belle-sip/4.5)" => Mobile,    BELLEDONNE, "Linphone";
            "LinphoneiOS/4.6.2 LinphoneSDK/5.1"   => Mobile,    BELLEDONNE, "Linphone";
        }
    }

    #[test]
    fn baresip_microsip_and_sipp_are_softphones() {
        expect! {
            "baresip v1.0.0 (x86_64/linux)" => Softphone, "baresip",  "baresip";
            "MicroSIP/3.21.3"               => Softphone, "MicroSIP", "MicroSIP";
            "sipp"                          => Softphone, "SIPp",     "SIPp";
            "SIPp/Linux"                    => Softphone, "SIPp",     "SIPp";
        }
        assert_eq!(classify("Sippy B2BUA", false).manufacturer, None);
    }

    #[test]
    fn telephone_jitsi_and_onesip_are_softphones() {
        expect! {
            "Telephone 1.4"          => Softphone, "64 Characters", "Telephone";
            "Jitsi2.10.5550Mac OS X" => Softphone, "Jitsi",         "Jitsi";
            "Onesip/1.3.2"           => Softphone, "Onesip",        "Onesip";
        }
    }

    #[test]
    fn groundwire_and_acrobits_apps_are_mobile() {
        expect! {
            "Groundwire/6.0.10 (build 1234; iOS 16.4)" => Mobile, "Acrobits", "Groundwire";
            "Acrobits Softphone/6.2 (iOS)" => Mobile, "Acrobits", "Acrobits Softphone";
        }
    }

    #[test]
    fn jssip_and_sipjs_are_webrtc_even_without_websocket() {
        expect! {
            "JsSIP 3.10.0"  => Webrtc, "JsSIP",  "JsSIP";
            "SIP.js/0.21.2" => Webrtc, "SIP.js", "SIP.js";
        }
    }

    #[test]
    fn anything_over_websocket_is_webrtc_unless_it_says_mobile() {
        assert_eq!(classify("JsSIP 3.10.0", true).device_type, Webrtc);
        assert_eq!(classify("", true).device_type, Webrtc);
        assert_eq!(classify("Acme Web Phone 2.0", true).device_type, Webrtc);
        assert_eq!(
            classify("Yealink SIP-T54W 96.86.0.70", true).device_type,
            Webrtc
        );
        let mobile_web = classify("SIP.js/0.21.2 (Android 14; Chrome)", true);
        assert_eq!(mobile_web.device_type, Mobile);
        assert_eq!(mobile_web.manufacturer.as_deref(), Some("SIP.js"));
        assert_eq!(classify("Groundwire/6.0", true).device_type, Mobile);
    }

    #[test]
    fn unknown_apps_with_android_or_ios_hints_are_mobile() {
        for ua in [
            "MyApp/1.0 (Android 13)",
            "Foo (iOS 17.1)",
            "Bar iPhone",
            "Baz/2 iPad",
        ] {
            let info = classify(ua, false);
            assert_eq!(
                (info.device_type, info.manufacturer),
                (Mobile, None),
                "{ua}"
            );
        }
    }

    #[test]
    fn ios_hint_needs_a_whole_word_and_android_desk_phones_stay_hardware() {
        assert_eq!(classify("Radios 1.0", false).device_type, Softphone);
        expect! {
            "Yealink SIP-T58A 58.86.0.5 Android" => Hardware, "Yealink", "SIP-T58A";
        }
    }

    #[test]
    fn unknown_and_empty_user_agents_are_anonymous_softphones() {
        let anonymous = DeviceInfo {
            device_type: Softphone,
            manufacturer: None,
            model: None,
            mac_address: None,
        };
        for ua in ["", "   ", "Asterisk PBX 20.1.0", "FooPhone/1.0"] {
            assert_eq!(classify(ua, false), anonymous, "{ua:?}");
        }
    }

    #[test]
    fn mac_addresses_are_extracted_and_normalised() {
        let cases = [
            (
                "Yealink SIP-T46S 66.86.0.15 00:15:65:aa:bb:cc",
                "00:15:65:aa:bb:cc",
            ),
            (
                "Grandstream GXP2170 1.0.11.3 000b82aabbcc",
                "00:0b:82:aa:bb:cc",
            ),
            (
                "Grandstream GXP2170 1.0.11.3 000B82AABBCC",
                "00:0b:82:aa:bb:cc",
            ),
            ("Fanvil X4U 2.12.2 0C-38-3E-01-02-03", "0c:38:3e:01:02:03"),
            (
                "snom D785/10.1.73.16 (MAC=000413aabbcc)",
                "00:04:13:aa:bb:cc",
            ),
            ("Mitel 6867i/5.1.0 MAC:08000f112233", "08:00:0f:11:22:33"),
        ];
        for (ua, mac) in cases {
            assert_eq!(
                classify(ua, false).mac_address.as_deref(),
                Some(mac),
                "{ua}"
            );
        }
    }

    #[test]
    fn versions_builds_and_malformed_hex_are_not_macs() {
        for ua in [
            "Yealink SIP-T54W 96.86.0.70",
            "Bria 6 release 6.5.0 stamp 108225",
            "Foo 00:15:65:aa:bb",
            "Foo 00:15:65-aa:bb:cc",
            "Foo 00.15.65.aa.bb.cc",
            "Foo 000b82aabbcg",
            "Foo 000b82aabbccdd",
        ] {
            assert_eq!(classify(ua, false).mac_address, None, "{ua}");
        }
    }

    #[test]
    fn device_types_round_trip_through_their_wire_names() {
        for t in DeviceType::ALL {
            assert_eq!(DeviceType::parse(t.as_str()), Some(t));
        }
        assert_eq!(DeviceType::parse("Hardware"), None);
        assert_eq!(DeviceType::parse(""), None);
    }

    #[test]
    fn odd_inputs_never_panic_and_never_yield_junk_models() {
        let long = "A".repeat(10 * 1024);
        let long_vendor = format!("Yealink {long}");
        let fixed = [
            "",
            "\0\x01\x07\x1b[31m\r\n\t",
            "Ünïcødé ☎️ 电话 📞",
            "Yealink",
            "Yealink ",
            "Cisco-",
            "Cisco-CP",
            "Cisco-Cé",
            "snom/",
            "Polycom-",
            "Polycom--UA",
            "Polycom-é-UA/1",
            "Bria",
            "z ",
            "Z é.1",
            "mac:",
            "MAC:é",
            "00:15:65:aa:bb:c\u{e9}",
            "é0:15:65:aa:bb:c",
            "00:15:65:aa:bb:cc:",
            "ios",
            long.as_str(),
            long_vendor.as_str(),
        ];
        for ua in fixed {
            for ws in [false, true] {
                let info = classify(ua, ws);
                assert!(info.model.is_none_or(|m| m.len() <= 64), "{ua:?}");
            }
        }
        assert_eq!(classify(&long_vendor, false).model, None);

        // Pseudo-random strings built from vendor words, separators and multi-byte chars.
        let pieces = [
            "Yealink", "Cisco", "CP", "Polycom", "-UA", "snom", "Bria", "Z ", "OBIHAI", "/", "-",
            "_", " ", ".", "1", "0b", ":", "mac:", "é", "☎", "\0", "\u{202e}", "ios", "Android",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            let mut ua = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                ua.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let _ = classify(&ua, seed.is_multiple_of(2));
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        }
    }
}
