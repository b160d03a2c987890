//! From a ready-to-render record to the certificate PDF: one layout drives the vector front and the raster
//! that is scrambled onto the colour back of the same sheet. Everything here is a pure function of its
//! inputs (record, fonts, master secret, recorded issuance time), which is what lets auditors reproduce a
//! certificate byte for byte.

use crate::error::EngineError;
use crate::render::{BackPage, DisplayList, GrayRaster, PdfMeta, PdfTimestamp, RenderError, Renderer, BACK_IMAGE_DPI};
use crate::scramble::{self, ScrambleKey};
use crate::secrets::MasterSecret;
use bcl_projections::date::JstDateTime;
use bcl_projections::record::{CertificateDocument, ResidentRecordCertificate};
use bcl_projections::RefusalReason;

/// Recorded with every issuance; bump it whenever a change alters the bytes of a rendered certificate.
pub const RENDERER_VERSION: &str = "bcl-resident-record/2";

pub struct Rendered {
    pub pdf: Vec<u8>,
    /// Sheets of paper, all copies included.
    pub sheets: u32,
}

/// Text rendering failures are refusals the kiosk can show ("cannot issue at a kiosk"), never a certificate
/// with a blank box; anything else is our bug.
fn render_error(e: RenderError) -> EngineError {
    match e {
        RenderError::UndrawableCharacter { .. } => EngineError::refused(RefusalReason::UndrawableCharacter, e.to_string()),
        RenderError::LayoutOverflow { .. } => EngineError::refused(RefusalReason::LayoutOverflow, e.to_string()),
        // A registered impression that cannot be reproduced is no usable registration at a kiosk: the
        // municipality has to register it again.
        RenderError::ImageUnreadable { .. } => EngineError::refused(RefusalReason::NoSealRegistration, e.to_string()),
        other => EngineError::Internal(format!("rendering: {other}")),
    }
}

pub fn scramble_key(secret: &MasterSecret, certificate_id: &str) -> ScrambleKey {
    ScrambleKey::derive(secret.as_bytes(), certificate_id)
}

fn back_of(front: &GrayRaster, key: &ScrambleKey) -> Result<BackPage, EngineError> {
    let back = scramble::scramble(front.width, front.height, &front.pixels, key)
        .map_err(|e| EngineError::Internal(format!("scramble: {e}")))?;
    Ok(BackPage {
        width: back.width,
        height: back.height,
        palette: back.palette,
        bits_per_index: back.bits_per_index,
        packed_indices: back.packed_indices,
    })
}

/// The renderer version recorded with an issuance of `doc`. 住民票の写し keeps the version it was first
/// issued under (its bytes did not change when the other types arrived); each other type has its own, so a
/// layout change of one type does not claim to change the others.
pub fn renderer_version(doc: &CertificateDocument) -> &'static str {
    match doc {
        CertificateDocument::ResidentRecord(_) => RENDERER_VERSION,
        CertificateDocument::ResidentRecordItems(_) => "bcl-resident-record-items/1",
        CertificateDocument::Seal(_) => "bcl-seal-registration/1",
        CertificateDocument::Tax(_) => "bcl-tax/1",
        CertificateDocument::FamilyRegister(_) => "bcl-family-register/1",
        CertificateDocument::DisasterDamage(_) => "bcl-disaster-damage/1",
    }
}

pub fn render_resident_record(
    renderer: &Renderer,
    secret: &MasterSecret,
    record: &ResidentRecordCertificate,
    issued_at: JstDateTime,
) -> Result<Rendered, EngineError> {
    let list = renderer.layout_resident_record(record).map_err(render_error)?;
    render_list(renderer, secret, &list, record.sheets_per_copy(), &record.certificate_id, "住民票の写し", issued_at)
}

/// Renders any certificate: front pages from its layout, each followed by the scrambled back of that sheet.
pub fn render(
    renderer: &Renderer,
    secret: &MasterSecret,
    doc: &CertificateDocument,
    issued_at: JstDateTime,
) -> Result<Rendered, EngineError> {
    let list = renderer.layout(doc).map_err(render_error)?;
    render_list(renderer, secret, &list, doc.sheets_per_copy(), doc.certificate_id(), doc.title(), issued_at)
}

fn render_list(
    renderer: &Renderer,
    secret: &MasterSecret,
    list: &DisplayList,
    per_copy: u32,
    certificate_id: &str,
    title: &str,
    issued_at: JstDateTime,
) -> Result<Rendered, EngineError> {
    let key = scramble_key(secret, certificate_id);
    // Copies repeat the same sheets: scramble each distinct sheet once.
    let per_copy = per_copy as usize;
    let mut backs: Vec<BackPage> = Vec::with_capacity(list.pages.len());
    for (i, page) in list.pages.iter().enumerate() {
        if i >= per_copy && list.pages[i % per_copy] == *page {
            backs.push(backs[i % per_copy].clone());
            continue;
        }
        let back_started = std::time::Instant::now();
        backs.push(back_of(&renderer.rasterize(page, BACK_IMAGE_DPI), &key)?);
        metrics::histogram!(crate::server::telemetry::BACK_IMAGE_DURATION).record(back_started.elapsed());
    }
    let meta = PdfMeta {
        certificate_id: certificate_id.to_owned(),
        title: title.into(),
        creation_date: Some(PdfTimestamp {
            year: issued_at.date.year as u16,
            month: issued_at.date.month as u8,
            day: issued_at.date.day as u8,
            hour: issued_at.hour as u8,
            minute: issued_at.minute as u8,
            second: issued_at.second as u8,
        }),
    };
    let pdf = renderer.write_pdf(list, &backs, &meta).map_err(render_error)?;
    Ok(Rendered { pdf, sheets: list.pages.len() as u32 })
}

/// The quantised front rasters that the backs of a certificate carry, for verification: descrambling a
/// back must give exactly the corresponding image.
pub fn front_images(renderer: &Renderer, doc: &CertificateDocument) -> Result<Vec<scramble::GrayImage>, EngineError> {
    let list = renderer.layout(doc).map_err(render_error)?;
    list.pages
        .iter()
        .map(|page| {
            let r = renderer.rasterize(page, BACK_IMAGE_DPI);
            scramble::quantise(r.width, r.height, &r.pixels).map_err(|e| EngineError::Internal(format!("quantise: {e}")))
        })
        .collect()
}
