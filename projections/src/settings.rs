//! A municipality's issuance settings (証明発行設定) with their defaults.
//!
//! Defaults fail closed: until a municipality has configured its name and mayor title (which every
//! certificate prints) and listed the types it issues, nothing is issued. Service hours default to the
//! national 06:30–23:00, the personal number is not printed, and the resident fee is 300 yen per copy.

use std::collections::{BTreeMap, BTreeSet};

use bcl_proto::{CertificateType, MunicipalitySettings, TypeFee};

use crate::date::parse_hh_mm;
use crate::record::MunicipalityHeader;

pub const DEFAULT_SERVICE_START: u32 = 6 * 60 + 30;
pub const DEFAULT_SERVICE_END: u32 = 23 * 60;
pub const DEFAULT_FEE_YEN: u32 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub municipality_name: String,
    pub mayor_title: String,
    pub mayor_name: String,
    pub enabled_types: BTreeSet<CertificateType>,
    pub personal_number_allowed: bool,
    /// Resident fee per copy; types not listed cost [`DEFAULT_FEE_YEN`].
    pub fees: BTreeMap<CertificateType, u32>,
    /// Minutes after local midnight, start inclusive, end exclusive.
    pub service_start: u32,
    pub service_end: u32,
    /// The year-end closure (29 December – 3 January); on unless the municipality switches it off.
    pub year_end_closure: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            municipality_name: String::new(),
            mayor_title: String::new(),
            mayor_name: String::new(),
            enabled_types: BTreeSet::new(),
            personal_number_allowed: false,
            fees: BTreeMap::new(),
            service_start: DEFAULT_SERVICE_START,
            service_end: DEFAULT_SERVICE_END,
            year_end_closure: true,
        }
    }
}

impl Settings {
    /// The header every certificate prints is known.
    pub fn is_configured(&self) -> bool {
        !self.municipality_name.is_empty() && !self.mayor_title.is_empty()
    }

    pub fn type_enabled(&self, t: CertificateType) -> bool {
        self.is_configured() && self.enabled_types.contains(&t)
    }

    pub fn fee_per_copy(&self, t: CertificateType) -> u32 {
        self.fees.get(&t).copied().unwrap_or(DEFAULT_FEE_YEN)
    }

    /// Whether `minute_of_day` (Japan time) is within service hours.
    pub fn in_service_hours(&self, minute_of_day: u32) -> bool {
        (self.service_start..self.service_end).contains(&minute_of_day)
    }

    pub fn header(&self, code: &str) -> MunicipalityHeader {
        MunicipalityHeader {
            code: code.to_owned(),
            name: self.municipality_name.clone(),
            mayor_title: self.mayor_title.clone(),
            mayor_name: self.mayor_name.clone(),
        }
    }

    /// Applies an update: only non-empty strings, non-empty lists and set optionals change. Listed fees
    /// replace the fee of their type only; the enabled-type list replaces the whole set. Values the
    /// engine's validation would have refused (unknown enums, unreadable times) are skipped, so a fold never
    /// fails on a settings leaf.
    pub fn merge(&mut self, update: &MunicipalitySettings) {
        for (field, value) in [
            (&mut self.municipality_name, &update.municipality_name),
            (&mut self.mayor_title, &update.mayor_title),
            (&mut self.mayor_name, &update.mayor_name),
        ] {
            if !value.is_empty() {
                field.clone_from(value);
            }
        }
        if !update.enabled_types.is_empty() {
            self.enabled_types = update
                .enabled_types
                .iter()
                .filter_map(|t| CertificateType::try_from(*t).ok())
                .filter(|t| *t != CertificateType::Unspecified)
                .collect();
        }
        if let Some(allowed) = update.personal_number_allowed {
            self.personal_number_allowed = allowed;
        }
        for fee in &update.fees {
            if let Ok(t) = CertificateType::try_from(fee.r#type) {
                if t != CertificateType::Unspecified {
                    self.fees.insert(t, fee.fee_yen);
                }
            }
        }
        let start = update.service_start.as_deref().and_then(parse_hh_mm).unwrap_or(self.service_start);
        let end = update.service_end.as_deref().and_then(parse_hh_mm).unwrap_or(self.service_end);
        if start < end {
            (self.service_start, self.service_end) = (start, end);
        }
        if let Some(on) = update.year_end_closure {
            self.year_end_closure = on;
        }
    }

    /// The settings as the Admin API returns them (every field filled, times as HH:MM).
    pub fn to_proto(&self, code: &str) -> MunicipalitySettings {
        let hh_mm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        MunicipalitySettings {
            municipality_code: code.to_owned(),
            municipality_name: self.municipality_name.clone(),
            mayor_title: self.mayor_title.clone(),
            mayor_name: self.mayor_name.clone(),
            enabled_types: self.enabled_types.iter().map(|t| *t as i32).collect(),
            personal_number_allowed: Some(self.personal_number_allowed),
            fees: self.fees.iter().map(|(t, fee)| TypeFee { r#type: *t as i32, fee_yen: *fee }).collect(),
            service_start: Some(hh_mm(self.service_start)),
            service_end: Some(hh_mm(self.service_end)),
            year_end_closure: Some(self.year_end_closure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fail_closed() {
        let s = Settings::default();
        assert!(!s.type_enabled(CertificateType::ResidentRecord));
        assert_eq!(s.fee_per_copy(CertificateType::ResidentRecord), 300);
        assert!(s.in_service_hours(6 * 60 + 30));
        assert!(!s.in_service_hours(6 * 60 + 29));
        assert!(s.in_service_hours(22 * 60 + 59));
        assert!(!s.in_service_hours(23 * 60));
    }

    #[test]
    fn merge_changes_only_what_is_set() {
        let mut s = Settings::default();
        s.merge(&MunicipalitySettings {
            enabled_types: vec![CertificateType::ResidentRecord as i32],
            ..Default::default()
        });
        assert!(!s.type_enabled(CertificateType::ResidentRecord), "no header yet");
        s.merge(&MunicipalitySettings {
            municipality_name: "東京都千代田区".into(),
            mayor_title: "千代田区長".into(),
            fees: vec![TypeFee { r#type: CertificateType::ResidentRecord as i32, fee_yen: 200 }],
            service_start: Some("07:00".into()),
            ..Default::default()
        });
        assert!(s.type_enabled(CertificateType::ResidentRecord));
        assert!(!s.type_enabled(CertificateType::SealRegistration));
        assert_eq!(s.fee_per_copy(CertificateType::ResidentRecord), 200);
        assert_eq!(s.fee_per_copy(CertificateType::SealRegistration), 300);
        assert_eq!((s.service_start, s.service_end), (420, 1380));
        let before = s.clone();
        s.merge(&MunicipalitySettings { service_start: Some("23:30".into()), ..Default::default() });
        assert_eq!(s, before, "an update making start >= end is ignored");
        s.merge(&MunicipalitySettings { personal_number_allowed: Some(true), ..Default::default() });
        assert!(s.personal_number_allowed);
        assert_eq!(s.municipality_name, "東京都千代田区");
        let proto = s.to_proto("131016");
        let mut again = Settings::default();
        again.merge(&proto);
        assert_eq!(again, s, "to_proto round-trips through merge");
    }
}
