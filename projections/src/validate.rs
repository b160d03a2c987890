//! Structural validation of change events and settings before anything is written to the log.
//!
//! The log is append-only, so a malformed event that slipped in would stay there for ever and every
//! rebuild would have to cope with it. Everything that can be decided from the event alone is decided here;
//! what depends on the current state (does the resident exist?) is the fold's business.
//!
//! Length caps, in Unicode scalar values (characters), chosen from the kiosk layout and the national
//! resident-record standard with headroom; they bound storage and catch garbage, the renderer still decides
//! what fits on a sheet:
//!
//! | field | max |
//! |---|---|
//! | family / given name, domicile head, family-register head | 32 |
//! | kana names | 64 |
//! | address, previous address, registered domicile, move-out destination | 200 |
//! | relationship (続柄) | 16 |
//! | disaster name | 100 |
//! | municipality name, mayor title | 64 (mayor name 32) |
//! | identifiers (resident, household, card serial, register, seal registration number) | 64 bytes of `[A-Za-z0-9_.-]` |
//!
//! Other bounds: a seal image is at most [`MAX_SEAL_IMAGE_BYTES`]; fiscal years [`MIN_FISCAL_YEAR`] to
//! [`MAX_FISCAL_YEAR`]. Events entering the log also pass [`validate_admission`]: a seal's PNG header must
//! declare at most [`MAX_SEAL_SIDE`] pixels a side (read before anything is decoded: a small file cannot
//! declare a huge image) and tax amounts are at most [`MAX_AMOUNT_YEN`]. The whole table, with the
//! transport limits, is in `docs/limits.md`.
//!
//! Error messages name the field path (proto JSON names) and the rule, never the offending value.

use prost::Message;
use sha2::{Digest, Sha256};
use thiserror::Error;

use bcl_proto::change_event::Body;
use bcl_proto::{CertificateType, ChangeEvent, DamageGrade, MunicipalitySettings, RemovalReason, Sex};

use crate::date::{parse_hh_mm, Date};

pub const MAX_NAME_CHARS: usize = 32;
pub const MAX_KANA_CHARS: usize = 64;
pub const MAX_ADDRESS_CHARS: usize = 200;
pub const MAX_RELATIONSHIP_CHARS: usize = 16;
pub const MAX_DISASTER_NAME_CHARS: usize = 100;
pub const MAX_MUNICIPALITY_NAME_CHARS: usize = 64;
pub const MAX_ID_BYTES: usize = 64;
/// Seal images are scanned at print resolution; 512 KiB is generous for a 25 mm square PNG.
pub const MAX_SEAL_IMAGE_BYTES: usize = 512 * 1024;
/// Largest side of a seal image, in pixels: a 25 mm impression scanned at 2,000 dpi is under 2,000 px, so
/// this is no constraint on a real seal, and it bounds the decoder's buffer (2048² × 4 bytes = 16 MiB).
pub const MAX_SEAL_SIDE: u32 = 2048;
/// Upper bound of a tax amount or income in yen (a trillion yen minus one): keeps every sum the
/// certificates print far from overflow and catches garbage.
pub const MAX_AMOUNT_YEN: i64 = 999_999_999_999;
pub const MIN_FISCAL_YEAR: u32 = 1989;
pub const MAX_FISCAL_YEAR: u32 = 2100;
/// Upper bound of a configured fee per copy; anything above is an input error.
pub const MAX_FEE_YEN: u32 = 100_000;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// The rule a field broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Rule {
    #[error("is required")]
    Required,
    #[error("must be 1 to 64 bytes of A-Z a-z 0-9 _ - .")]
    IdFormat,
    #[error("must be 6 ASCII digits")]
    MunicipalityCodeFormat,
    #[error("check digit does not match")]
    CheckDigit,
    #[error("must be a UUID (8-4-4-4-12 hexadecimal digits)")]
    Uuid,
    #[error("must be at least 1")]
    SourceSeq,
    #[error("must be a calendar date YYYY-MM-DD")]
    Date,
    #[error("must be a time HH:MM")]
    Time,
    #[error("service start must be before service end")]
    ServiceHours,
    #[error("event body is missing")]
    MissingBody,
    #[error("unknown or unspecified enum value")]
    UnknownEnum,
    #[error("longer than {max} characters")]
    TooLong { max: usize },
    #[error("contains a control character")]
    ControlCharacter,
    #[error("must be 12 ASCII digits")]
    PersonalNumberFormat,
    #[error("is not a PNG image")]
    PngSignature,
    #[error("PNG header (IHDR) is missing or malformed")]
    PngHeader,
    #[error("image must be 1 to {max} pixels a side")]
    ImageDimensions { max: u32 },
    #[error("larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("must not be negative")]
    Negative,
    #[error("must be between {min} and {max}")]
    OutOfRange { min: u32, max: u32 },
    #[error("must be at most {max}")]
    TooBig { max: i64 },
}

/// A field that failed validation. `path` uses the proto JSON names, e.g. `residentRegistered.birthDate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{path}: {rule}")]
pub struct ValidationError {
    pub path: &'static str,
    pub rule: Rule,
}

type Result<T = ()> = std::result::Result<T, ValidationError>;

fn fail(path: &'static str, rule: Rule) -> Result {
    Err(ValidationError { path, rule })
}

/// SHA-256 of the prost encoding. prost encodes fields in tag order and these messages have no maps, so the
/// encoding (and the digest) is a function of the content: it tells an identical re-send from a conflict.
pub fn event_digest(ev: &ChangeEvent) -> [u8; 32] {
    Sha256::digest(ev.encode_to_vec()).into()
}

/// 地方公共団体コード: five digits and a check digit, `r = (6d1+5d2+4d3+3d4+2d5) mod 11`, check = last digit of
/// `11 - r`.
pub fn check_municipality_code(code: &str) -> std::result::Result<(), Rule> {
    let b = code.as_bytes();
    if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
        return Err(Rule::MunicipalityCodeFormat);
    }
    let sum: u32 = b[..5].iter().zip([6, 5, 4, 3, 2]).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let check = (11 - sum % 11) % 10;
    if u32::from(b[5] - b'0') == check { Ok(()) } else { Err(Rule::CheckDigit) }
}

/// 個人番号: twelve digits, the last a check digit over the other eleven (Pn is the n-th digit counted from
/// the right excluding the check digit, Qn = n+1 for n ≤ 6 and n-5 for n ≥ 7, r = ΣPn·Qn mod 11, check = 0
/// if r ≤ 1 else 11 - r).
pub fn check_personal_number(number: &str) -> std::result::Result<(), Rule> {
    let b = number.as_bytes();
    if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
        return Err(Rule::PersonalNumberFormat);
    }
    let sum: u32 = (1..=11u32)
        .map(|n| {
            let p = u32::from(b[11 - n as usize] - b'0');
            let q = if n <= 6 { n + 1 } else { n - 5 };
            p * q
        })
        .sum();
    let r = sum % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    if u32::from(b[11] - b'0') == check { Ok(()) } else { Err(Rule::CheckDigit) }
}

/// True for `8-4-4-4-12` hexadecimal (any version, either case).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Identifiers of residents, households, cards...: opaque, ASCII, bounded, safe in logs and keys.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_BYTES
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

fn id(path: &'static str, s: &str) -> Result {
    if s.is_empty() {
        fail(path, Rule::Required)
    } else if !is_valid_id(s) {
        fail(path, Rule::IdFormat)
    } else {
        Ok(())
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional overrides/isolates, which could make printed text
/// read differently from the stored one. Variation selectors (IVS) are allowed: names need them.
fn is_forbidden_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `s` holds a character [`is_forbidden_char`] refuses. Every such character's UTF-8 encoding
/// starts with a byte below 0x20, 0x7F, 0xC2 (C1 controls, U+0080–U+009F) or 0xE2 (the bidirectional
/// controls, U+202A–U+202E and U+2066–U+2069): a string without those bytes (nearly every name and address,
/// Japanese text is 0xE3–0xE9) is accepted by one branch-free pass over its bytes instead of decoding
/// every character (the rebuild validates ~20 strings per event).
fn has_forbidden_char(s: &str) -> bool {
    let suspect = s.bytes().fold(false, |found, b| found | (b < 0x20) | (b == 0x7F) | (b == 0xC2) | (b == 0xE2));
    suspect && s.chars().any(is_forbidden_char)
}

fn text(path: &'static str, s: &str, max: usize, required: bool) -> Result {
    if s.is_empty() {
        return if required { fail(path, Rule::Required) } else { Ok(()) };
    }
    if has_forbidden_char(s) {
        return fail(path, Rule::ControlCharacter);
    }
    // A string has at most as many characters as bytes: count only when the bytes alone could be too many.
    if s.len() > max && s.chars().count() > max {
        return fail(path, Rule::TooLong { max });
    }
    Ok(())
}

fn opt_text(path: &'static str, s: &Option<String>, max: usize, required: bool) -> Result {
    s.as_deref().map_or(Ok(()), |s| text(path, s, max, required))
}

fn date(path: &'static str, s: &str) -> Result {
    Date::parse(s).map(|_| ()).map_err(|_| ValidationError { path, rule: Rule::Date })
}

fn known_enum<E: TryFrom<i32>>(path: &'static str, v: i32) -> Result {
    if v != 0 && E::try_from(v).is_ok() { Ok(()) } else { fail(path, Rule::UnknownEnum) }
}

fn non_negative(path: &'static str, v: i64) -> Result {
    if v < 0 { fail(path, Rule::Negative) } else { Ok(()) }
}

fn at_most(path: &'static str, v: i64, max: i64) -> Result {
    if v > max { fail(path, Rule::TooBig { max }) } else { Ok(()) }
}

/// Width and height a PNG declares in its header, which must be the first chunk (IHDR, 13 bytes) right
/// after the signature. Only the header is read: this is the check that refuses a decompression bomb
/// before any decoder allocates for it.
pub fn png_dimensions(png: &[u8]) -> std::result::Result<(u32, u32), Rule> {
    if !png.starts_with(&PNG_SIGNATURE) {
        return Err(Rule::PngSignature);
    }
    let ihdr = png.get(8..8 + 8 + 13).ok_or(Rule::PngHeader)?;
    if ihdr[..8] != [0, 0, 0, 13, b'I', b'H', b'D', b'R'] {
        return Err(Rule::PngHeader);
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Ok((be(&ihdr[8..12]), be(&ihdr[12..16])))
}

fn seal_image_header(path: &'static str, png: &[u8]) -> Result {
    let (width, height) = png_dimensions(png).map_err(|rule| ValidationError { path, rule })?;
    if !(1..=MAX_SEAL_SIDE).contains(&width) || !(1..=MAX_SEAL_SIDE).contains(&height) {
        return fail(path, Rule::ImageDimensions { max: MAX_SEAL_SIDE });
    }
    Ok(())
}

/// Structural validity of one change event. Returns the first failing field in declaration order.
pub fn validate_event(ev: &ChangeEvent) -> Result {
    check_municipality_code(&ev.municipality_code)
        .map_err(|rule| ValidationError { path: "municipalityCode", rule })?;
    if ev.source_seq == 0 {
        return fail("sourceSeq", Rule::SourceSeq);
    }
    if !is_uuid(&ev.event_id) {
        return fail("eventId", if ev.event_id.is_empty() { Rule::Required } else { Rule::Uuid });
    }
    date("effectiveDate", &ev.effective_date)?;
    let Some(body) = &ev.body else {
        return fail("body", Rule::MissingBody);
    };
    match body {
        Body::ResidentRegistered(r) => {
            id("residentRegistered.residentId", &r.resident_id)?;
            id("residentRegistered.householdId", &r.household_id)?;
            text("residentRegistered.familyName", &r.family_name, MAX_NAME_CHARS, true)?;
            text("residentRegistered.givenName", &r.given_name, MAX_NAME_CHARS, false)?;
            text("residentRegistered.familyNameKana", &r.family_name_kana, MAX_KANA_CHARS, false)?;
            text("residentRegistered.givenNameKana", &r.given_name_kana, MAX_KANA_CHARS, false)?;
            date("residentRegistered.birthDate", &r.birth_date)?;
            known_enum::<Sex>("residentRegistered.sex", r.sex)?;
            text("residentRegistered.address", &r.address, MAX_ADDRESS_CHARS, true)?;
            text("residentRegistered.relationship", &r.relationship, MAX_RELATIONSHIP_CHARS, false)?;
            date("residentRegistered.residentSince", &r.resident_since)?;
            date("residentRegistered.addressSince", &r.address_since)?;
            text("residentRegistered.previousAddress", &r.previous_address, MAX_ADDRESS_CHARS, false)?;
            text("residentRegistered.registeredDomicile", &r.registered_domicile, MAX_ADDRESS_CHARS, false)?;
            text("residentRegistered.domicileHead", &r.domicile_head, MAX_NAME_CHARS, false)?;
            if !r.personal_number.is_empty() {
                check_personal_number(&r.personal_number)
                    .map_err(|rule| ValidationError { path: "residentRegistered.personalNumber", rule })?;
            }
        }
        Body::ResidentChanged(c) => {
            id("residentChanged.residentId", &c.resident_id)?;
            if let Some(h) = &c.household_id {
                id("residentChanged.householdId", h)?;
            }
            opt_text("residentChanged.familyName", &c.family_name, MAX_NAME_CHARS, true)?;
            opt_text("residentChanged.givenName", &c.given_name, MAX_NAME_CHARS, false)?;
            opt_text("residentChanged.familyNameKana", &c.family_name_kana, MAX_KANA_CHARS, false)?;
            opt_text("residentChanged.givenNameKana", &c.given_name_kana, MAX_KANA_CHARS, false)?;
            opt_text("residentChanged.address", &c.address, MAX_ADDRESS_CHARS, true)?;
            if let Some(d) = &c.address_since {
                date("residentChanged.addressSince", d)?;
            }
            opt_text("residentChanged.relationship", &c.relationship, MAX_RELATIONSHIP_CHARS, false)?;
            opt_text("residentChanged.registeredDomicile", &c.registered_domicile, MAX_ADDRESS_CHARS, false)?;
            opt_text("residentChanged.domicileHead", &c.domicile_head, MAX_NAME_CHARS, false)?;
        }
        Body::MoveOutFiled(m) => {
            id("moveOutFiled.residentId", &m.resident_id)?;
            date("moveOutFiled.plannedDate", &m.planned_date)?;
            text("moveOutFiled.destination", &m.destination, MAX_ADDRESS_CHARS, false)?;
        }
        Body::ResidentRemoved(r) => {
            id("residentRemoved.residentId", &r.resident_id)?;
            known_enum::<RemovalReason>("residentRemoved.reason", r.reason)?;
        }
        Body::SupportMeasureChanged(s) => id("supportMeasureChanged.residentId", &s.resident_id)?,
        Body::SealRegistered(s) => {
            id("sealRegistered.residentId", &s.resident_id)?;
            id("sealRegistered.registrationNumber", &s.registration_number)?;
            if s.seal_image_png.is_empty() {
                return fail("sealRegistered.sealImagePng", Rule::Required);
            }
            if s.seal_image_png.len() > MAX_SEAL_IMAGE_BYTES {
                return fail("sealRegistered.sealImagePng", Rule::TooLarge { max: MAX_SEAL_IMAGE_BYTES });
            }
            if !s.seal_image_png.starts_with(&PNG_SIGNATURE) {
                return fail("sealRegistered.sealImagePng", Rule::PngSignature);
            }
        }
        Body::SealAbolished(s) => id("sealAbolished.residentId", &s.resident_id)?,
        Body::TaxAssessed(t) => {
            id("taxAssessed.residentId", &t.resident_id)?;
            if !(MIN_FISCAL_YEAR..=MAX_FISCAL_YEAR).contains(&t.fiscal_year) {
                return fail("taxAssessed.fiscalYear", Rule::OutOfRange { min: MIN_FISCAL_YEAR, max: MAX_FISCAL_YEAR });
            }
            non_negative("taxAssessed.totalIncome", t.total_income)?;
            non_negative("taxAssessed.taxableIncome", t.taxable_income)?;
            non_negative("taxAssessed.municipalTax", t.municipal_tax)?;
            non_negative("taxAssessed.prefecturalTax", t.prefectural_tax)?;
        }
        Body::CardIssued(c) => {
            id("cardIssued.residentId", &c.resident_id)?;
            id("cardIssued.cardSerial", &c.card_serial)?;
        }
        Body::CardRevoked(c) => id("cardRevoked.cardSerial", &c.card_serial)?,
        Body::FamilyRegisterRecorded(f) => {
            id("familyRegisterRecorded.residentId", &f.resident_id)?;
            id("familyRegisterRecorded.registerId", &f.register_id)?;
            text("familyRegisterRecorded.domicile", &f.domicile, MAX_ADDRESS_CHARS, true)?;
            text("familyRegisterRecorded.head", &f.head, MAX_NAME_CHARS, true)?;
        }
        Body::DamageCertified(d) => {
            id("damageCertified.householdId", &d.household_id)?;
            text("damageCertified.disasterName", &d.disaster_name, MAX_DISASTER_NAME_CHARS, true)?;
            date("damageCertified.disasterDate", &d.disaster_date)?;
            known_enum::<DamageGrade>("damageCertified.grade", d.grade)?;
        }
    }
    Ok(())
}

/// Limits on an event entering the log, on top of [`validate_event`] (which it assumes has passed).
///
/// They are kept apart because the fold re-checks every event with [`validate_event`] when it replays a
/// log: making that stricter would change how logs written by earlier versions fold (an event accepted
/// then would suspend its municipality now), and a replay must give the same projection for ever. Limits
/// that only protect the engine from what it is sent belong here: a seal image's declared dimensions
/// (read from the PNG header, so a decompression bomb is refused before any decoder sees it) and the
/// magnitude of tax amounts.
pub fn validate_admission(ev: &ChangeEvent) -> Result {
    match &ev.body {
        Some(Body::SealRegistered(s)) => seal_image_header("sealRegistered.sealImagePng", &s.seal_image_png),
        Some(Body::TaxAssessed(t)) => {
            at_most("taxAssessed.totalIncome", t.total_income, MAX_AMOUNT_YEN)?;
            at_most("taxAssessed.taxableIncome", t.taxable_income, MAX_AMOUNT_YEN)?;
            at_most("taxAssessed.municipalTax", t.municipal_tax, MAX_AMOUNT_YEN)?;
            at_most("taxAssessed.prefecturalTax", t.prefectural_tax, MAX_AMOUNT_YEN)
        }
        _ => Ok(()),
    }
}

/// Validity of a settings update (証明発行設定変更) before the engine appends it. Unset fields are fine: they
/// keep their current value.
pub fn validate_settings(s: &MunicipalitySettings) -> Result {
    check_municipality_code(&s.municipality_code).map_err(|rule| ValidationError { path: "municipalityCode", rule })?;
    text("municipalityName", &s.municipality_name, MAX_MUNICIPALITY_NAME_CHARS, false)?;
    text("mayorTitle", &s.mayor_title, MAX_MUNICIPALITY_NAME_CHARS, false)?;
    text("mayorName", &s.mayor_name, MAX_NAME_CHARS, false)?;
    for t in &s.enabled_types {
        known_enum::<CertificateType>("enabledTypes", *t)?;
    }
    for f in &s.fees {
        known_enum::<CertificateType>("fees.type", f.r#type)?;
        if f.fee_yen > MAX_FEE_YEN {
            return fail("fees.feeYen", Rule::OutOfRange { min: 0, max: MAX_FEE_YEN });
        }
    }
    let start = match &s.service_start {
        Some(t) => Some(parse_hh_mm(t).ok_or(ValidationError { path: "serviceStart", rule: Rule::Time })?),
        None => None,
    };
    let end = match &s.service_end {
        Some(t) => Some(parse_hh_mm(t).ok_or(ValidationError { path: "serviceEnd", rule: Rule::Time })?),
        None => None,
    };
    if let (Some(start), Some(end)) = (start, end) {
        if start >= end {
            return fail("serviceEnd", Rule::ServiceHours);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcl_proto::{ResidentRegistered, SealRegistered, TaxAssessed, TypeFee};

    fn registered() -> ChangeEvent {
        ChangeEvent {
            municipality_code: "131016".into(),
            source_seq: 1,
            event_id: "0b6f4e2a-3c1d-4e5f-8a9b-0c1d2e3f4a5b".into(),
            effective_date: "2026-04-01".into(),
            body: Some(Body::ResidentRegistered(ResidentRegistered {
                resident_id: "R-0001".into(),
                household_id: "H-0001".into(),
                family_name: "山田".into(),
                given_name: "太郎".into(),
                family_name_kana: "ヤマダ".into(),
                given_name_kana: "タロウ".into(),
                birth_date: "1980-05-05".into(),
                sex: Sex::Male as i32,
                address: "東京都千代田区千代田1番1号".into(),
                household_head: true,
                relationship: "世帯主".into(),
                resident_since: "2000-01-01".into(),
                address_since: "2000-01-01".into(),
                personal_number: "123456789018".into(),
                ..Default::default()
            })),
        }
    }

    fn with_reg(f: impl FnOnce(&mut ResidentRegistered)) -> ChangeEvent {
        let mut ev = registered();
        if let Some(Body::ResidentRegistered(r)) = &mut ev.body {
            f(r);
        }
        ev
    }

    fn err(ev: &ChangeEvent) -> ValidationError {
        validate_event(ev).expect_err("expected a validation error")
    }

    /// The first error of ingest's checks: the fold's rules, then the admission limits.
    fn admission_err(ev: &ChangeEvent) -> ValidationError {
        validate_event(ev).and_then(|()| validate_admission(ev)).expect_err("expected a validation error")
    }

    /// The byte pre-check of `has_forbidden_char` must never let a forbidden character through: compare it
    /// with the per-character rule on every character of the Basic Multilingual Plane and a few beyond.
    #[test]
    fn forbidden_char_precheck_agrees_with_the_character_rule() {
        let chars = (0u32..0x1_0000).chain([0x1_F600, 0xE_0100, 0x10_FFFF]).filter_map(char::from_u32);
        for c in chars {
            for s in [c.to_string(), format!("山田{c}"), format!("{c}a"), format!("abc{c}東京")] {
                assert_eq!(has_forbidden_char(&s), s.chars().any(is_forbidden_char), "U+{:04X} in {s:?}", c as u32);
            }
        }
    }

    #[test]
    fn a_complete_registration_is_valid() {
        assert_eq!(validate_event(&registered()), Ok(()));
    }

    #[test]
    fn municipality_check_digit() {
        assert_eq!(check_municipality_code("131016"), Ok(()));
        assert_eq!(check_municipality_code("011002"), Ok(())); // 札幌市: r = 9, check 11 - 9 = 2
        for last in 0..10 {
            let code = format!("13101{last}");
            assert_eq!(check_municipality_code(&code).is_ok(), last == 6, "{code}");
        }
        assert_eq!(check_municipality_code("13101"), Err(Rule::MunicipalityCodeFormat));
        assert_eq!(check_municipality_code("13101a"), Err(Rule::MunicipalityCodeFormat));
        let mut ev = registered();
        ev.municipality_code = "131017".into();
        assert_eq!(err(&ev), ValidationError { path: "municipalityCode", rule: Rule::CheckDigit });
    }

    #[test]
    fn personal_number_check_digit() {
        assert_eq!(check_personal_number("123456789018"), Ok(()));
        for last in 0..10u8 {
            let n = format!("12345678901{last}");
            assert_eq!(check_personal_number(&n).is_ok(), last == 8, "{last}");
        }
        assert_eq!(check_personal_number("12345678901"), Err(Rule::PersonalNumberFormat));
        let ev = with_reg(|r| r.personal_number = "123456789012".into());
        assert_eq!(err(&ev), ValidationError { path: "residentRegistered.personalNumber", rule: Rule::CheckDigit });
        assert_eq!(validate_event(&with_reg(|r| r.personal_number.clear())), Ok(()));
    }

    #[test]
    fn header_rules() {
        let mut ev = registered();
        ev.source_seq = 0;
        assert_eq!(err(&ev).path, "sourceSeq");
        let mut ev = registered();
        ev.event_id = "0b6f4e2a3c1d4e5f8a9b0c1d2e3f4a5b".into();
        assert_eq!(err(&ev).rule, Rule::Uuid);
        let mut ev = registered();
        ev.effective_date = "2026-02-30".into();
        assert_eq!(err(&ev).path, "effectiveDate");
        let mut ev = registered();
        ev.body = None;
        assert_eq!(err(&ev).rule, Rule::MissingBody);
    }

    #[test]
    fn body_rules() {
        assert_eq!(err(&with_reg(|r| r.birth_date = "1980-02-30".into())).path, "residentRegistered.birthDate");
        assert_eq!(err(&with_reg(|r| r.sex = 0)).rule, Rule::UnknownEnum);
        assert_eq!(err(&with_reg(|r| r.sex = 7)).rule, Rule::UnknownEnum);
        assert_eq!(err(&with_reg(|r| r.resident_id = "R 1".into())).rule, Rule::IdFormat);
        assert_eq!(err(&with_reg(|r| r.resident_id = "x".repeat(65))).rule, Rule::IdFormat);
        assert_eq!(err(&with_reg(|r| r.household_id.clear())).rule, Rule::Required);
        assert_eq!(err(&with_reg(|r| r.family_name = "山".repeat(33))).rule, Rule::TooLong { max: 32 });
        assert_eq!(validate_event(&with_reg(|r| r.family_name = "山".repeat(32))), Ok(()));
        assert_eq!(err(&with_reg(|r| r.address = "千代田\n1".into())).rule, Rule::ControlCharacter);
        assert_eq!(err(&with_reg(|r| r.relationship = "\u{202E}妻".into())).rule, Rule::ControlCharacter);
        // An ideographic variation sequence is ordinary name data.
        assert_eq!(validate_event(&with_reg(|r| r.family_name = "葛\u{E0100}西".into())), Ok(()));
    }

    #[test]
    fn seal_and_tax_rules() {
        let seal = |png: Vec<u8>| ChangeEvent {
            body: Some(Body::SealRegistered(SealRegistered {
                resident_id: "R-1".into(),
                registration_number: "S-1".into(),
                seal_image_png: png,
            })),
            ..registered()
        };
        // Signature and IHDR only: validation reads the header; decoding is the engine's business.
        let header = |w: u32, h: u32| {
            let mut png = PNG_SIGNATURE.to_vec();
            png.extend([0, 0, 0, 13]);
            png.extend(b"IHDR");
            png.extend(w.to_be_bytes());
            png.extend(h.to_be_bytes());
            png.extend([8, 0, 0, 0, 0]);
            png
        };
        let admitted = |ev: &ChangeEvent| validate_event(ev).and_then(|()| validate_admission(ev));
        assert_eq!(admitted(&seal(header(96, 96))), Ok(()));
        assert_eq!(admitted(&seal(header(MAX_SEAL_SIDE, 1))), Ok(()));
        assert_eq!(admission_err(&seal(b"GIF89a....".to_vec())).rule, Rule::PngSignature);
        assert_eq!(admission_err(&seal(PNG_SIGNATURE.to_vec())).rule, Rule::PngHeader);
        let mut not_ihdr = header(96, 96);
        not_ihdr[12..16].copy_from_slice(b"IDAT");
        assert_eq!(admission_err(&seal(not_ihdr)).rule, Rule::PngHeader);
        // A decompression bomb declares its size up front: refused from the header alone.
        let bomb = Rule::ImageDimensions { max: MAX_SEAL_SIDE };
        assert_eq!(admission_err(&seal(header(100_000, 100_000))).rule, bomb);
        assert_eq!(admission_err(&seal(header(MAX_SEAL_SIDE + 1, 1))).rule, bomb);
        assert_eq!(admission_err(&seal(header(0, 96))).rule, bomb);
        // The fold's own rules are unchanged: a signature is all it asks of a seal already in a log.
        assert_eq!(validate_event(&seal(header(100_000, 100_000))), Ok(()));
        assert_eq!(validate_event(&seal(PNG_SIGNATURE.to_vec())), Ok(()));
        let mut big = header(96, 96);
        big.resize(MAX_SEAL_IMAGE_BYTES + 1, 0);
        assert_eq!(err(&seal(big)).rule, Rule::TooLarge { max: MAX_SEAL_IMAGE_BYTES });
        assert_eq!(err(&seal(Vec::new())).rule, Rule::Required);

        let tax = |fy: u32, municipal: i64| ChangeEvent {
            body: Some(Body::TaxAssessed(TaxAssessed {
                resident_id: "R-1".into(),
                fiscal_year: fy,
                municipal_tax: municipal,
                ..Default::default()
            })),
            ..registered()
        };
        assert_eq!(validate_event(&tax(2026, 0)), Ok(()));
        assert_eq!(err(&tax(1988, 0)).path, "taxAssessed.fiscalYear");
        assert_eq!(err(&tax(2101, 0)).path, "taxAssessed.fiscalYear");
        assert_eq!(err(&tax(2026, -1)).rule, Rule::Negative);
        assert_eq!(err(&tax(2026, i64::MIN)).rule, Rule::Negative);
        assert_eq!(validate_admission(&tax(2026, MAX_AMOUNT_YEN)), Ok(()));
        assert_eq!(admission_err(&tax(2026, MAX_AMOUNT_YEN + 1)).rule, Rule::TooBig { max: MAX_AMOUNT_YEN });
        assert_eq!(admission_err(&tax(2026, i64::MAX)).path, "taxAssessed.municipalTax");
        assert_eq!(validate_event(&tax(2026, i64::MAX)), Ok(()), "the fold's rules are unchanged");
    }

    #[test]
    fn messages_name_the_field_never_the_value() {
        let ev = with_reg(|r| r.birth_date = "1980-13-45".into());
        let msg = err(&ev).to_string();
        assert!(msg.contains("residentRegistered.birthDate"));
        assert!(!msg.contains("1980"));
    }

    #[test]
    fn digest_tells_resends_from_conflicts() {
        let a = registered();
        assert_eq!(event_digest(&a), event_digest(&a.clone()));
        let b = with_reg(|r| r.given_name = "次郎".into());
        assert_ne!(event_digest(&a), event_digest(&b));
    }

    #[test]
    fn settings_rules() {
        let ok = MunicipalitySettings {
            municipality_code: "131016".into(),
            enabled_types: vec![CertificateType::ResidentRecord as i32],
            fees: vec![TypeFee { r#type: CertificateType::ResidentRecord as i32, fee_yen: 200 }],
            service_start: Some("06:30".into()),
            service_end: Some("23:00".into()),
            ..Default::default()
        };
        assert_eq!(validate_settings(&ok), Ok(()));
        let bad_hours = MunicipalitySettings { service_start: Some("23:00".into()), service_end: Some("06:30".into()), ..ok.clone() };
        assert_eq!(validate_settings(&bad_hours).unwrap_err().rule, Rule::ServiceHours);
        let bad_type = MunicipalitySettings { enabled_types: vec![0], ..ok.clone() };
        assert_eq!(validate_settings(&bad_type).unwrap_err().path, "enabledTypes");
        let bad_time = MunicipalitySettings { service_start: Some("6:30".into()), ..ok };
        assert_eq!(validate_settings(&bad_time).unwrap_err().rule, Rule::Time);
    }
}
