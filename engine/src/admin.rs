//! The municipality's administration of issuance (管理者ページ): maintenance, issuance blocks (発行禁止設定)
//! and settings (証明発行設定). Every change is a leaf of the log, so it takes effect for the next request
//! and auditors see who could get what, when.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::writer::Command;
use bcl_proto::{admin_action::Action, AdminAction, MunicipalitySettings, MunicipalityStatus};

const MAX_TEXT: usize = 64;

/// The actor recorded for an admin change made in-process (no network caller), e.g. by a benchmark.
pub const LOCAL_ACTOR: &str = "engine-local";

pub(crate) fn check_code(code: &str) -> Result<(), EngineError> {
    if bcl_projections::validate::check_municipality_code(code).is_ok() {
        Ok(())
    } else {
        Err(EngineError::Invalid("municipality_code: not a valid 6-digit local government code".into()))
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), EngineError> {
    if value.chars().count() > max {
        return Err(EngineError::Invalid(format!("{field}: longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(EngineError::Invalid(format!("{field}: contains control characters")));
    }
    Ok(())
}

impl Engine {
    fn admin_action(&self, municipality_code: &str, action: Action, actor: &str) -> AdminAction {
        AdminAction {
            municipality_code: municipality_code.to_string(),
            at: self.clock.now().to_rfc3339(),
            action: Some(action),
            actor: actor.to_string(),
        }
    }

    /// Maintenance on: issuance stops at once. Off: lifts maintenance or a fail-closed suspension, refused
    /// while any of the municipality's link data is still held back.
    pub async fn set_maintenance(&self, req: bcl_proto::SetMaintenanceRequest) -> Result<MunicipalityStatus, EngineError> {
        self.set_maintenance_by(req, LOCAL_ACTOR).await
    }

    /// [`Self::set_maintenance`] recording `actor` (the caller's identity) in the log leaf.
    pub async fn set_maintenance_by(
        &self,
        req: bcl_proto::SetMaintenanceRequest,
        actor: &str,
    ) -> Result<MunicipalityStatus, EngineError> {
        check_code(&req.municipality_code)?;
        check_text("reason", &req.reason, 200)?;
        if let Some(r) = self.follower() {
            let answer = r.admin_client().set_maintenance(req).await.map_err(crate::replication::forwarded)?;
            return Ok(answer.into_inner());
        }
        let code = req.municipality_code.clone();
        let lifting = !req.on;
        let action = self.admin_action(&code, Action::SetMaintenance(req), actor);
        let check_code = code.clone();
        self.writer
            .submit(|reply| Command::Admin {
                action,
                precondition: Box::new(move |proj| {
                    if lifting {
                        proj.state.check_lift(&check_code).map_err(|e| EngineError::BacklogRemains(e.to_string()))
                    } else {
                        Ok(())
                    }
                }),
                reply,
            })
            .await?;
        self.municipality_status(&code)
    }

    /// 発行禁止設定: takes effect for the next request; an issuance prepared concurrently is re-checked by the
    /// writer because the block changes the municipality after the issuance's snapshot.
    pub async fn set_issuance_block(&self, req: bcl_proto::SetIssuanceBlockRequest) -> Result<(), EngineError> {
        self.set_issuance_block_by(req, LOCAL_ACTOR).await
    }

    pub async fn set_issuance_block_by(&self, req: bcl_proto::SetIssuanceBlockRequest, actor: &str) -> Result<(), EngineError> {
        check_code(&req.municipality_code)?;
        if req.resident_id.is_empty() || req.resident_id.len() > MAX_TEXT {
            return Err(EngineError::Invalid("resident_id: required, at most 64 bytes".into()));
        }
        if let Some(r) = self.follower() {
            r.admin_client().set_issuance_block(req).await.map_err(crate::replication::forwarded)?;
            return Ok(());
        }
        let code = req.municipality_code.clone();
        let action = self.admin_action(&code, Action::SetIssuanceBlock(req), actor);
        self.writer.submit(|reply| Command::Admin { action, precondition: Box::new(|_| Ok(())), reply }).await?;
        Ok(())
    }

    pub async fn update_settings(&self, settings: MunicipalitySettings) -> Result<MunicipalitySettings, EngineError> {
        self.update_settings_by(settings, LOCAL_ACTOR).await
    }

    pub async fn update_settings_by(
        &self,
        settings: MunicipalitySettings,
        actor: &str,
    ) -> Result<MunicipalitySettings, EngineError> {
        check_code(&settings.municipality_code)?;
        bcl_projections::validate_settings(&settings).map_err(|e| EngineError::Invalid(e.to_string()))?;
        check_text("municipality_name", &settings.municipality_name, 32)?;
        check_text("mayor_title", &settings.mayor_title, 32)?;
        check_text("mayor_name", &settings.mayor_name, 32)?;
        for (field, value) in [("service_start", &settings.service_start), ("service_end", &settings.service_end)] {
            if let Some(v) = value {
                if bcl_projections::date::parse_hh_mm(v).is_none() {
                    return Err(EngineError::Invalid(format!("{field}: expected HH:MM")));
                }
            }
        }
        for t in &settings.enabled_types {
            if bcl_proto::CertificateType::try_from(*t).map_or(true, |t| t == bcl_proto::CertificateType::Unspecified) {
                return Err(EngineError::Invalid("enabled_types: unknown certificate type".into()));
            }
        }
        for fee in &settings.fees {
            if bcl_proto::CertificateType::try_from(fee.r#type).map_or(true, |t| t == bcl_proto::CertificateType::Unspecified) {
                return Err(EngineError::Invalid("fees.type: unknown certificate type".into()));
            }
            if fee.fee_yen > 10_000 {
                return Err(EngineError::Invalid("fees.fee_yen: more than 10000 yen".into()));
            }
        }
        if let Some(r) = self.follower() {
            let answer = r.admin_client().update_settings(settings).await.map_err(crate::replication::forwarded)?;
            return Ok(answer.into_inner());
        }
        let code = settings.municipality_code.clone();
        let action = self.admin_action(&code, Action::UpdateSettings(settings), actor);
        self.writer.submit(|reply| Command::Admin { action, precondition: Box::new(|_| Ok(())), reply }).await?;
        self.settings(&code)
    }

    pub fn settings(&self, code: &str) -> Result<MunicipalitySettings, EngineError> {
        check_code(code)?;
        let proj = self.projection.read().expect("projection lock");
        Ok(match proj.state.municipality(code) {
            Some(m) => m.settings().to_proto(code),
            None => bcl_projections::Settings::default().to_proto(code),
        })
    }
}

/// 取引情報 and 精算: pure projections of the issuance leaves a municipality's state keeps, so the figures
/// are exact and an auditor folding the same log gets the same ones.
pub mod ledger {
    use bcl_proto::{CertificateType, IssuanceRecord, Settlement, Transaction, TypeSettlement};
    use std::collections::BTreeMap;

    /// What BCL charges the municipality per certificate (copy).
    pub const BCL_FEE_YEN: u32 = 180;
    /// The store's commission per certificate.
    pub const STORE_COMMISSION_YEN: u32 = 117;
    /// Disaster certificates (罹災証明書) are charged at a reduced rate.
    pub const DISASTER_BCL_FEE_YEN: u32 = 107;
    pub const DISASTER_STORE_COMMISSION_YEN: u32 = 10;

    /// (BCL fee, store commission) per certificate of a type.
    pub fn unit_fees(t: CertificateType) -> (u32, u32) {
        if t == CertificateType::DisasterDamage {
            (DISASTER_BCL_FEE_YEN, DISASTER_STORE_COMMISSION_YEN)
        } else {
            (BCL_FEE_YEN, STORE_COMMISSION_YEN)
        }
    }

    fn certificate_type(r: &IssuanceRecord) -> CertificateType {
        r.request.as_ref().and_then(|q| CertificateType::try_from(q.r#type).ok()).unwrap_or(CertificateType::Unspecified)
    }

    fn copies(r: &IssuanceRecord) -> u32 {
        r.request.as_ref().map_or(1, |q| q.copies.max(1))
    }

    /// The transaction as the municipality's staff see it: no personal field of the resident (the card serial
    /// and the subjects stay out).
    pub fn transaction(position: u64, r: &IssuanceRecord) -> Transaction {
        let q = r.request.clone().unwrap_or_default();
        let t = certificate_type(r);
        let (bcl, store) = unit_fees(t);
        let n = copies(r);
        Transaction {
            certificate_id: r.certificate_id.clone(),
            request_id: q.request_id,
            municipality_code: q.municipality_code,
            centre: q.centre,
            kiosk_id: q.kiosk_id,
            r#type: t as i32,
            sheets: r.sheets,
            copies: n,
            fee_yen: r.fee_yen,
            issued_at: r.issued_at.clone(),
            log_position: position,
            outcome: "ISSUED".into(),
            bcl_fee_yen: bcl.saturating_mul(n),
            store_commission_yen: store.saturating_mul(n),
        }
    }

    /// The Japan-time calendar date (YYYY-MM-DD) of an issuance, from its recorded RFC 3339 clock.
    pub fn issued_on(r: &IssuanceRecord) -> &str {
        r.issued_at.get(..10).unwrap_or("")
    }

    /// A refused request as a transaction: its outcome is the refusal reason, nothing is charged.
    pub fn refusal_transaction(position: u64, r: &bcl_proto::RefusalRecord) -> Transaction {
        let q = r.request.clone().unwrap_or_default();
        Transaction {
            certificate_id: String::new(),
            request_id: q.request_id,
            municipality_code: q.municipality_code,
            centre: q.centre,
            kiosk_id: q.kiosk_id,
            r#type: q.r#type,
            sheets: 0,
            copies: q.copies.max(1),
            fee_yen: 0,
            issued_at: r.at.clone(),
            log_position: position,
            outcome: r.reason.clone(),
            bcl_fee_yen: 0,
            store_commission_yen: 0,
        }
    }

    /// Issuances and refusals on dates in `[from, to]` (YYYY-MM-DD, inclusive; `None` = open), in log
    /// order, at most `limit` (0 = all).
    pub fn transactions(
        records: &[(u64, IssuanceRecord)],
        refusals: &[(u64, bcl_proto::RefusalRecord)],
        from: Option<&str>,
        to: Option<&str>,
        limit: usize,
    ) -> Vec<Transaction> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        let in_period = |day: &str| from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t);
        let issued = records.iter().filter(|(_, r)| in_period(issued_on(r))).map(|(p, r)| transaction(*p, r));
        let refused = refusals.iter().filter(|(_, r)| in_period(r.at.get(..10).unwrap_or(""))).map(|(p, r)| refusal_transaction(*p, r));
        let mut all: Vec<Transaction> = issued.chain(refused).collect();
        all.sort_by_key(|t| t.log_position);
        all.truncate(limit);
        all
    }

    /// The month's settlement (`month` as YYYY-MM, Japan time): counts and money per type and in total.
    pub fn settlement(code: &str, month: &str, records: &[(u64, IssuanceRecord)]) -> Settlement {
        let mut per_type: BTreeMap<i32, TypeSettlement> = BTreeMap::new();
        for (_, r) in records.iter().filter(|(_, r)| r.issued_at.get(..7) == Some(month)) {
            let t = certificate_type(r);
            let (bcl, store) = unit_fees(t);
            let n = u64::from(copies(r));
            let e = per_type.entry(t as i32).or_insert_with(|| TypeSettlement { r#type: t as i32, ..Default::default() });
            e.issuances += 1;
            e.certificates += n;
            e.bcl_fee_yen += n * u64::from(bcl);
            e.store_commission_yen += n * u64::from(store);
            e.resident_fees_yen += u64::from(r.fee_yen);
        }
        let per_type: Vec<TypeSettlement> = per_type.into_values().collect();
        let sum = |f: fn(&TypeSettlement) -> u64| per_type.iter().map(f).sum::<u64>();
        Settlement {
            municipality_code: code.to_owned(),
            month: month.to_owned(),
            certificates: sum(|e| e.certificates),
            disaster_certificates: per_type
                .iter()
                .filter(|e| e.r#type == CertificateType::DisasterDamage as i32)
                .map(|e| e.certificates)
                .sum(),
            bcl_fee_yen: sum(|e| e.bcl_fee_yen),
            store_commission_yen: sum(|e| e.store_commission_yen),
            resident_fees_yen: sum(|e| e.resident_fees_yen),
            per_type,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use bcl_proto::IssueRequest;

        fn issued(at: &str, t: CertificateType, copies: u32, fee_yen: u32) -> IssuanceRecord {
            IssuanceRecord {
                certificate_id: format!("C-{at}"),
                request: Some(IssueRequest { r#type: t as i32, copies, card_serial: "CARD".into(), ..Default::default() }),
                issued_at: at.into(),
                fee_yen,
                sheets: copies,
                ..Default::default()
            }
        }

        /// A hand-computed month: 2 住民票 (one of 3 copies at 300 yen each), 1 印鑑 at 200 yen, 2 罹災 (one of 2
        /// copies) at 0 yen; one issuance on 1 May and one on 31 March do not count for April.
        #[test]
        fn april_by_hand() {
            use CertificateType::*;
            let records: Vec<(u64, IssuanceRecord)> = [
                issued("2026-03-31T23:59:59+09:00", ResidentRecord, 1, 300),
                issued("2026-04-01T06:30:00+09:00", ResidentRecord, 1, 300),
                issued("2026-04-10T12:00:00+09:00", ResidentRecord, 3, 900),
                issued("2026-04-11T12:00:00+09:00", SealRegistration, 1, 200),
                issued("2026-04-20T12:00:00+09:00", DisasterDamage, 1, 0),
                issued("2026-04-30T22:59:59+09:00", DisasterDamage, 2, 0),
                issued("2026-05-01T06:30:00+09:00", SealRegistration, 1, 200),
            ]
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i as u64 + 100, r))
            .collect();
            let s = settlement("131016", "2026-04", &records);
            // Certificates: 1 + 3 + 1 + 1 + 2 = 8, of which 3 disaster.
            assert_eq!((s.certificates, s.disaster_certificates), (8, 3));
            // BCL: 5 × 180 + 3 × 107 = 900 + 321 = 1221. Store: 5 × 117 + 3 × 10 = 585 + 30 = 615.
            assert_eq!((s.bcl_fee_yen, s.store_commission_yen), (1221, 615));
            // Residents: 300 + 900 + 200 + 0 + 0 = 1400.
            assert_eq!(s.resident_fees_yen, 1400);
            let types: Vec<(i32, u64, u64)> = s.per_type.iter().map(|e| (e.r#type, e.issuances, e.certificates)).collect();
            assert_eq!(types, [(ResidentRecord as i32, 2, 4), (SealRegistration as i32, 1, 1), (DisasterDamage as i32, 2, 3)]);
            assert_eq!(settlement("131016", "2026-06", &records).certificates, 0);

            let april = transactions(&records, &[], Some("2026-04-01"), Some("2026-04-30"), 0);
            assert_eq!(april.len(), 5);
            assert_eq!(april[0].log_position, 101);
            assert_eq!((april[1].copies, april[1].bcl_fee_yen, april[1].store_commission_yen), (3, 540, 351));
            assert_eq!(april[4].bcl_fee_yen, 214);
            assert!(april.iter().all(|t| t.outcome == "ISSUED"));
            assert_eq!(transactions(&records, &[], None, Some("2026-03-31"), 0).len(), 1);
            assert_eq!(transactions(&records, &[], Some("2026-04-11"), None, 2).len(), 2);
        }
    }
}

impl Engine {
    /// 取引情報参照: the municipality's issuances, filterable by Japan-time date.
    pub fn list_transactions(&self, req: &bcl_proto::ListTransactionsRequest) -> Result<Vec<bcl_proto::Transaction>, EngineError> {
        check_code(&req.municipality_code)?;
        let date = |field: &str, v: &str| -> Result<Option<String>, EngineError> {
            if v.is_empty() {
                return Ok(None);
            }
            bcl_projections::Date::parse(v).map_err(|_| EngineError::Invalid(format!("{field}: expected YYYY-MM-DD")))?;
            Ok(Some(v.to_owned()))
        };
        let from = date("from_date", &req.from_date)?;
        let to = date("to_date", &req.to_date)?;
        let proj = self.projection.read().expect("projection lock");
        let Some(m) = proj.state.municipality(&req.municipality_code) else { return Ok(Vec::new()) };
        Ok(ledger::transactions(m.transactions(), m.refusals(), from.as_deref(), to.as_deref(), req.limit as usize))
    }

    /// The month's settlement (精算) of a municipality.
    pub fn settlement(&self, req: &bcl_proto::SettlementRequest) -> Result<bcl_proto::Settlement, EngineError> {
        check_code(&req.municipality_code)?;
        let month_ok = req.month.len() == 7
            && bcl_projections::Date::parse(&format!("{}-01", req.month)).is_ok();
        if !month_ok {
            return Err(EngineError::Invalid("month: expected YYYY-MM".into()));
        }
        let proj = self.projection.read().expect("projection lock");
        let records = proj.state.municipality(&req.municipality_code).map_or(&[][..], |m| m.transactions());
        Ok(ledger::settlement(&req.municipality_code, &req.month, records))
    }
}

impl Engine {
    /// 中間DB参照: what the engine holds for a resident and what each certificate type would answer now.
    /// For the municipality's own staff; never logged.
    pub fn lookup_resident(&self, req: &bcl_proto::LookupResidentRequest) -> Result<bcl_proto::ResidentView, EngineError> {
        use bcl_projections::ResidentStatus;
        check_code(&req.municipality_code)?;
        if req.resident_id.is_empty() || req.resident_id.len() > MAX_TEXT {
            return Err(EngineError::Invalid("resident_id: required, at most 64 bytes".into()));
        }
        let now = self.clock.now();
        let proj = self.projection.read().expect("projection lock");
        let m = proj.state.municipality(&req.municipality_code).ok_or_else(|| EngineError::NotFound("municipality".into()))?;
        let r = m.resident(&req.resident_id).ok_or_else(|| EngineError::NotFound("resident".into()))?;
        let d = r.birth_date;
        let eligibility = bcl_projections::eligibility_today(&proj.state, &req.municipality_code, &req.resident_id, now)
            .into_iter()
            .map(|(t, answer)| bcl_proto::TypeEligibility {
                r#type: t as i32,
                issuable: answer.is_ok(),
                reason: answer.as_ref().err().map(|e| e.reason.as_str().to_owned()).unwrap_or_default(),
                message: answer.err().map(|e| e.message).unwrap_or_default(),
            })
            .collect();
        Ok(bcl_proto::ResidentView {
            municipality_code: req.municipality_code.clone(),
            resident_id: r.id.clone(),
            household_id: r.household_id.clone(),
            family_name: r.family_name.clone(),
            given_name: r.given_name.clone(),
            birth_date: format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
            address: r.address.clone(),
            status: match r.status {
                ResidentStatus::Active => "ACTIVE",
                ResidentStatus::MoveOutFiled { .. } => "MOVE_OUT_FILED",
                ResidentStatus::Removed { .. } => "REMOVED",
            }
            .into(),
            household_head: r.household_head,
            support_measure: r.support_measure,
            issuance_blocked: m.is_blocked(&r.id),
            gaiji_pending: r.gaiji_pending,
            seal_registered: r.seal.as_ref().is_some_and(|s| !s.abolished),
            tax_years: r.tax.keys().copied().collect(),
            family_register_id: r.family_register.as_ref().map(|f| f.register_id.clone()).unwrap_or_default(),
            cards: m.cards().filter(|(_, c)| c.resident_id == r.id).count() as u32,
            damage_records: m.damage_records(&r.household_id).len() as u32,
            source_positions: r.provenance.clone(),
            eligibility,
        })
    }
}
