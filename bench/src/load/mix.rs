//! What the kiosks ask for. Every request is built from one of the fixture municipality's cases
//! (`bcl_fixtures::Case`), whose expected answer (issue, or refuse with a CONTRACT reason) is known, so
//! the harness checks every answer under load instead of only timing it.
//!
//! Proportions (per 1,000 kiosk transactions; an assumption modelled on what convenience-store kiosks
//! mostly print, not a published statistic — change [`WEIGHTS`] to model another peak):
//!
//! | share | what | cases drawn from |
//! |---:|---|---|
//! | 550 | 住民票の写し (RESIDENT_RECORD) | the cases expected to issue one |
//! | 250 | 印鑑登録証明書 (SEAL_REGISTRATION) | the cases expected to issue one |
//! | 100 | 課税証明書 (TAX_ASSESSMENT) | the cases expected to issue one |
//! |  80 | requests that must be refused | every refusal case, uniformly (unknown/revoked card, under age, support measure, moving out, ...) |
//! |  20 | kiosk retries of an earlier issued request | same request_id and body; must replay the same certificate |
//!
//! Options of a 住民票 request, drawn independently: whole household as listed in the case 70 % (else the
//! requester alone), 世帯主・続柄 60 %, 本籍・筆頭者 25 %, 個人番号 5 %, two copies 10 %. Seal and tax
//! requests ask for two copies 10 % of the time. Refusal cases are sent exactly as the fixture states them.

use bcl_fixtures::{Case, Expect};
use bcl_proto::{CertificateType, Centre, IssueRequest};
use rand::Rng;

/// Which part of the mix a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    ResidentRecord,
    Seal,
    Tax,
    Refusal,
    Retry,
}

/// Shares per 1,000 transactions, in the order of the table above.
pub const WEIGHTS: [(Category, u32); 5] =
    [(Category::ResidentRecord, 550), (Category::Seal, 250), (Category::Tax, 100), (Category::Refusal, 80), (Category::Retry, 20)];

/// The engine's answer the case calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Issue,
    Refuse(&'static str),
}

/// One fixture case of one municipality, ready to be turned into requests.
#[derive(Debug, Clone)]
pub struct Template {
    pub municipality_code: String,
    pub case: Case,
}

/// A request to send (without its request_id, centre and kiosk, which the driver assigns).
#[derive(Debug, Clone)]
pub struct Drawn {
    pub category: Category,
    pub case_name: &'static str,
    pub request: IssueRequest,
    pub expected: Expected,
}

/// What the next kiosk transaction is.
#[derive(Debug, Clone)]
pub enum Draw {
    Fresh(Drawn),
    /// Re-send an earlier issued request, byte for byte (the driver keeps those).
    Retry,
}

/// Why a mix cannot be built from the fixtures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("the fixture municipalities hold no case for the {0:?} share of the mix")]
    Empty(Category),
}

/// The weighted request mix.
#[derive(Debug, Clone)]
pub struct Mix {
    pools: Vec<(Category, u32, Vec<Template>)>,
}

/// The short name of a certificate type, for reports.
pub fn type_name(t: i32) -> &'static str {
    match CertificateType::try_from(t).unwrap_or(CertificateType::Unspecified) {
        CertificateType::ResidentRecord => "resident_record",
        CertificateType::ResidentRecordItems => "resident_record_items",
        CertificateType::SealRegistration => "seal_registration",
        CertificateType::TaxAssessment => "tax_assessment",
        CertificateType::Income => "income",
        CertificateType::FamilyRegister => "family_register",
        CertificateType::FamilyRegisterPersonal => "family_register_personal",
        CertificateType::FamilyRegisterAnnex => "family_register_annex",
        CertificateType::DisasterDamage => "disaster_damage",
        CertificateType::Unspecified => "unspecified",
    }
}

fn category_of(case: &Case) -> Category {
    match (case.expect, case.certificate_type) {
        (Expect::Refuse(_), _) => Category::Refusal,
        (Expect::Issue { .. }, CertificateType::SealRegistration) => Category::Seal,
        (Expect::Issue { .. }, CertificateType::TaxAssessment) => Category::Tax,
        (Expect::Issue { .. }, _) => Category::ResidentRecord,
    }
}

impl Mix {
    /// The mix over the cases of every given municipality (code, cases).
    pub fn from_cases(municipalities: &[(String, Vec<Case>)]) -> Result<Mix, MixError> {
        let mut pools: Vec<(Category, u32, Vec<Template>)> = WEIGHTS.iter().map(|(c, w)| (*c, *w, Vec::new())).collect();
        for (code, cases) in municipalities {
            for case in cases {
                // Only 住民票 are drawn for the resident-record share: other types' issue cases have their own.
                if category_of(case) == Category::ResidentRecord && case.certificate_type != CertificateType::ResidentRecord {
                    continue;
                }
                let category = category_of(case);
                let pool = pools.iter_mut().find(|p| p.0 == category).expect("every category has a pool");
                pool.2.push(Template { municipality_code: code.clone(), case: case.clone() });
            }
        }
        for (category, _, templates) in &pools {
            if *category != Category::Retry && templates.is_empty() {
                return Err(MixError::Empty(*category));
            }
        }
        Ok(Mix { pools })
    }

    /// How many templates each share draws from.
    pub fn pool_sizes(&self) -> Vec<(Category, u32, usize)> {
        self.pools.iter().map(|(c, w, t)| (*c, *w, t.len())).collect()
    }

    /// The next transaction.
    pub fn draw(&self, rng: &mut impl Rng) -> Draw {
        let total: u32 = self.pools.iter().map(|p| p.1).sum();
        let mut pick = rng.random_range(0..total);
        let (category, templates) = self
            .pools
            .iter()
            .find_map(|(c, w, t)| {
                if pick < *w {
                    Some((*c, t))
                } else {
                    pick -= w;
                    None
                }
            })
            .expect("pick is below the total weight");
        if category == Category::Retry {
            return Draw::Retry;
        }
        let template = &templates[rng.random_range(0..templates.len())];
        Draw::Fresh(build(category, template, rng))
    }
}

fn build(category: Category, template: &Template, rng: &mut impl Rng) -> Drawn {
    let case = &template.case;
    let mut request = IssueRequest {
        request_id: String::new(),
        centre: Centre::Unspecified as i32,
        kiosk_id: String::new(),
        municipality_code: template.municipality_code.clone(),
        card_serial: case.card_serial.clone(),
        r#type: case.certificate_type as i32,
        subject_resident_ids: case.subject_resident_ids.clone(),
        include_relationship: false,
        include_domicile: false,
        include_personal_number: false,
        fiscal_year: case.fiscal_year,
        copies: 1,
    };
    match category {
        Category::ResidentRecord => {
            if !rng.random_bool(0.70) {
                request.subject_resident_ids = vec![case.requester_resident_id.clone()];
            }
            request.include_relationship = rng.random_bool(0.60);
            request.include_domicile = rng.random_bool(0.25);
            request.include_personal_number = rng.random_bool(0.05);
            request.copies = if rng.random_bool(0.10) { 2 } else { 1 };
        }
        Category::Seal | Category::Tax => request.copies = if rng.random_bool(0.10) { 2 } else { 1 },
        Category::Refusal | Category::Retry => {}
    }
    let expected = match case.expect {
        Expect::Issue { .. } => Expected::Issue,
        Expect::Refuse(reason) => Expected::Refuse(reason),
    };
    Drawn { category, case_name: case.name, request, expected }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mix() -> Mix {
        let m = bcl_fixtures::generate(&bcl_fixtures::Spec { households: 5, ..Default::default() });
        Mix::from_cases(&[("131016".to_string(), m.cases)]).unwrap()
    }

    #[test]
    fn draws_each_share_in_its_documented_proportion() {
        let mix = mix();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 100_000;
        let mut counts = std::collections::HashMap::new();
        for _ in 0..n {
            let c = match mix.draw(&mut rng) {
                Draw::Fresh(d) => d.category,
                Draw::Retry => Category::Retry,
            };
            *counts.entry(c).or_insert(0u32) += 1;
        }
        for (category, weight) in WEIGHTS {
            let share = counts[&category] as f64 / n as f64;
            assert!((share - weight as f64 / 1000.0).abs() < 0.005, "{category:?}: {share}");
        }
    }

    #[test]
    fn every_drawn_request_matches_its_case_and_share() {
        let mix = mix();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for _ in 0..5_000 {
            let Draw::Fresh(d) = mix.draw(&mut rng) else { continue };
            let t = CertificateType::try_from(d.request.r#type).unwrap();
            match d.category {
                Category::ResidentRecord => {
                    assert_eq!(t, CertificateType::ResidentRecord);
                    assert_eq!(d.expected, Expected::Issue);
                }
                Category::Seal => assert_eq!((t, d.expected), (CertificateType::SealRegistration, Expected::Issue)),
                Category::Tax => {
                    assert_eq!((t, d.expected), (CertificateType::TaxAssessment, Expected::Issue));
                    assert_ne!(d.request.fiscal_year, 0, "tax requests name the fiscal year");
                }
                Category::Refusal => assert!(matches!(d.expected, Expected::Refuse(r) if !r.is_empty())),
                Category::Retry => unreachable!("retries are not drawn fresh"),
            }
            assert!(!d.request.card_serial.is_empty());
            assert!(d.request.copies == 1 || d.request.copies == 2);
        }
    }

    #[test]
    fn a_municipality_without_refusal_cases_cannot_make_a_mix() {
        let m = bcl_fixtures::generate(&bcl_fixtures::Spec { households: 1, ..Default::default() });
        let cases: Vec<Case> = m.cases.into_iter().filter(|c| matches!(c.expect, Expect::Issue { .. })).collect();
        assert_eq!(Mix::from_cases(&[("131016".into(), cases)]).unwrap_err(), MixError::Empty(Category::Refusal));
    }
}
