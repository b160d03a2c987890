//! From a ready-to-render record to the certificate PDF: one layout drives the vector front and the raster
//! that is scrambled onto the colour back of the same sheet. Everything here is a pure function of its
//! inputs (record, fonts, master secret, recorded issuance time), which is what lets auditors reproduce a
//! certificate byte for byte.

use crate::error::EngineError;
use crate::render::{
    BackDesign, BackPage, DisplayList, GrayRaster, PdfMeta, PdfTimestamp, RenderError, Renderer, BACK_IMAGE_DPI,
};
use crate::scramble::{self, ScrambleKey};
use crate::secrets::MasterSecret;
use bcl_projections::date::JstDateTime;
use bcl_projections::record::{CertificateDocument, ResidentRecordCertificate};
use bcl_projections::RefusalReason;

/// Recorded with every issuance; bump it whenever a change alters the bytes of a rendered certificate, and
/// teach [`back_design`] the new version: certificates issued under every earlier version must still
/// reproduce byte for byte.
pub const RENDERER_VERSION: &str = "bcl-resident-record/4";

pub struct Rendered {
    pub pdf: Vec<u8>,
    /// Sheets of paper, all copies included.
    pub sheets: u32,
}

/// Text rendering failures are refusals the kiosk can show ("cannot issue at a kiosk"), never a certificate
/// with a blank box; anything else is our bug.
fn render_error(e: RenderError) -> EngineError {
    match e {
        RenderError::UndrawableCharacter { .. } => {
            EngineError::refused(RefusalReason::UndrawableCharacter, e.to_string())
        }
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
/// layout change of one type does not claim to change the others. A change of the back page changes all.
pub fn renderer_version(doc: &CertificateDocument) -> &'static str {
    match doc {
        CertificateDocument::ResidentRecord(_) => RENDERER_VERSION,
        CertificateDocument::ResidentRecordItems(_) => "bcl-resident-record-items/3",
        CertificateDocument::Seal(_) => "bcl-seal-registration/3",
        CertificateDocument::Tax(_) => "bcl-tax/3",
        CertificateDocument::FamilyRegister(_) => "bcl-family-register/3",
        CertificateDocument::DisasterDamage(_) => "bcl-disaster-damage/3",
    }
}

/// Every renderer version certificates were issued under, with the back page it drew. Append only: a
/// version, once issued, must keep reproducing byte for byte.
const ISSUED_VERSIONS: &[(&str, BackDesign)] = &[
    ("bcl-resident-record/2", BackDesign::Plain),
    ("bcl-resident-record-items/1", BackDesign::Plain),
    ("bcl-seal-registration/1", BackDesign::Plain),
    ("bcl-tax/1", BackDesign::Plain),
    ("bcl-family-register/1", BackDesign::Plain),
    ("bcl-disaster-damage/1", BackDesign::Plain),
    // Latent image on the back, id caption raised off the unprintable edge.
    ("bcl-resident-record/3", BackDesign::LatentImage),
    ("bcl-resident-record-items/2", BackDesign::LatentImage),
    ("bcl-seal-registration/2", BackDesign::LatentImage),
    ("bcl-tax/2", BackDesign::LatentImage),
    ("bcl-family-register/2", BackDesign::LatentImage),
    ("bcl-disaster-damage/2", BackDesign::LatentImage),
    // The same pages, the back image predicted and deflated faster (issue 6: throughput).
    ("bcl-resident-record/4", BackDesign::LatentImageFastDeflate),
    ("bcl-resident-record-items/3", BackDesign::LatentImageFastDeflate),
    ("bcl-seal-registration/3", BackDesign::LatentImageFastDeflate),
    ("bcl-tax/3", BackDesign::LatentImageFastDeflate),
    ("bcl-family-register/3", BackDesign::LatentImageFastDeflate),
    ("bcl-disaster-damage/3", BackDesign::LatentImageFastDeflate),
];

/// The back design renderer version `version` drew, for reproducing a certificate issued under it. `None`:
/// a version this engine never issued under, or one of another certificate type.
pub fn back_design(doc: &CertificateDocument, version: &str) -> Option<BackDesign> {
    let family = |v: &str| v.split_once('/').map(|(f, _)| f.to_owned());
    if family(version)? != family(renderer_version(doc))? {
        return None;
    }
    ISSUED_VERSIONS.iter().find(|(v, _)| *v == version).map(|(_, d)| *d)
}

pub fn render_resident_record(
    renderer: &Renderer,
    secret: &MasterSecret,
    record: &ResidentRecordCertificate,
    issued_at: JstDateTime,
) -> Result<Rendered, EngineError> {
    let list = renderer.layout_resident_record(record).map_err(render_error)?;
    let (per_copy, id) = (record.sheets_per_copy(), &record.certificate_id);
    render_list(renderer, secret, &list, per_copy, id, "住民票の写し", issued_at, BackDesign::CURRENT)
}

/// Renders any certificate as issued today: front pages from its layout, each followed by the scrambled back
/// of that sheet.
pub fn render(
    renderer: &Renderer,
    secret: &MasterSecret,
    doc: &CertificateDocument,
    issued_at: JstDateTime,
) -> Result<Rendered, EngineError> {
    render_as(renderer, secret, doc, issued_at, renderer_version(doc))
}

/// Renders a certificate as renderer version `version` drew it: reproduction of a certificate issued under
/// an earlier version gives that version's bytes.
pub fn render_as(
    renderer: &Renderer,
    secret: &MasterSecret,
    doc: &CertificateDocument,
    issued_at: JstDateTime,
    version: &str,
) -> Result<Rendered, EngineError> {
    let design = back_design(doc, version).ok_or_else(|| {
        EngineError::Internal("the issuance names a renderer version this engine does not know".into())
    })?;
    let list = renderer.layout(doc).map_err(render_error)?;
    let (per_copy, id) = (doc.sheets_per_copy(), doc.certificate_id());
    render_list(renderer, secret, &list, per_copy, id, doc.title(), issued_at, design)
}

#[allow(clippy::too_many_arguments)]
fn render_list(
    renderer: &Renderer,
    secret: &MasterSecret,
    list: &DisplayList,
    per_copy: u32,
    certificate_id: &str,
    title: &str,
    issued_at: JstDateTime,
    design: BackDesign,
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
        let raster = renderer.rasterize(page, BACK_IMAGE_DPI);
        backs.push(back_of(&raster, &key)?);
        raster.recycle();
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
    let pdf = renderer.write_pdf_as(list, &backs, &meta, design).map_err(render_error)?;
    for back in backs {
        scramble::recycle_packed(back.packed_indices);
    }
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
            scramble::quantise(r.width, r.height, &r.pixels)
                .map_err(|e| EngineError::Internal(format!("quantise: {e}")))
        })
        .collect()
}
