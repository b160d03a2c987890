//! The municipality's administration of issuance (管理者ページ): maintenance, issuance blocks (発行禁止設定)
//! and settings (証明発行設定). Every change is a leaf of the log, so it takes effect for the next request
//! and auditors see who could get what, when.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::writer::Command;
use bcl_proto::{admin_action::Action, AdminAction, MunicipalitySettings, MunicipalityStatus};

const MAX_TEXT: usize = 64;

fn check_code(code: &str) -> Result<(), EngineError> {
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
    fn admin_action(&self, municipality_code: &str, action: Action) -> AdminAction {
        AdminAction {
            municipality_code: municipality_code.to_string(),
            at: self.clock.now().to_rfc3339(),
            action: Some(action),
        }
    }

    /// Maintenance on: issuance stops at once. Off: lifts maintenance or a fail-closed suspension, refused
    /// while any of the municipality's link data is still held back.
    pub async fn set_maintenance(&self, req: bcl_proto::SetMaintenanceRequest) -> Result<MunicipalityStatus, EngineError> {
        check_code(&req.municipality_code)?;
        check_text("reason", &req.reason, 200)?;
        let code = req.municipality_code.clone();
        let lifting = !req.on;
        let action = self.admin_action(&code, Action::SetMaintenance(req));
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
        check_code(&req.municipality_code)?;
        if req.resident_id.is_empty() || req.resident_id.len() > MAX_TEXT {
            return Err(EngineError::Invalid("resident_id: required, at most 64 bytes".into()));
        }
        let code = req.municipality_code.clone();
        let action = self.admin_action(&code, Action::SetIssuanceBlock(req));
        self.writer.submit(|reply| Command::Admin { action, precondition: Box::new(|_| Ok(())), reply }).await?;
        Ok(())
    }

    pub async fn update_settings(&self, settings: MunicipalitySettings) -> Result<MunicipalitySettings, EngineError> {
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
        let code = settings.municipality_code.clone();
        let action = self.admin_action(&code, Action::UpdateSettings(settings));
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
