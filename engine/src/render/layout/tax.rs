//! 課税証明書 / 非課税証明書 and 所得証明書 of one fiscal year: the taxpayer, the income of the
//! preceding calendar year and, for the assessment, the taxes levied. Amounts are right-aligned
//! with thousands separators; a 非課税 assessment says so in its title, a row and its
//! certification, never by zeros alone.

use bcl_projections::record::{format_yen, TaxCertificate, TaxCertificateKind};

use super::era::era_date;
use super::form::{self, era_calendar_year, era_fiscal_year, Part, ADDRESS, BODY, LEFT, NAME};
use super::{Align, Style};
use crate::render::display_list::DisplayList;
use crate::render::fonts::{FontRole, FontSet};
use crate::render::RenderError;

const AMOUNT: Style = Style { font: FontRole::Mincho, size: 11.0, min_size: 7.0 };
const LABEL_W: f32 = 150.0;
const ROW: f32 = 26.0;

pub fn layout(fonts: &FontSet, cert: &TaxCertificate) -> Result<DisplayList, RenderError> {
    let year = era_fiscal_year(cert.fiscal_year, "fiscal_year")?;
    let income_year = era_calendar_year(cert.income_year(), "fiscal_year")?;
    let kind = match (cert.kind, cert.exempt) {
        (TaxCertificateKind::Assessment, false) => "課税証明書",
        (TaxCertificateKind::Assessment, true) => "非課税証明書",
        (TaxCertificateKind::Income, _) => "所得証明書",
    };
    let mut c = form::sheet(fonts, &cert.municipality, &format!("{year}　{kind}"), 1, 1)?;

    // The taxpayer.
    let mut y = form::BODY_TOP;
    let top = y;
    form::row(&mut c, y, 30.0, &[Part::Label("住所", 90.0), Part::Value(&cert.address, "address", 0.0, ADDRESS, Align::Left)])?;
    y += 30.0;
    let name = form::full_name(&cert.family_name, &cert.given_name);
    form::row(&mut c, y, 34.0, &[Part::Label("氏名", 90.0), Part::Value(&name, "name", 0.0, NAME, Align::Left)])?;
    y += 34.0;
    let birth = era_date(cert.birth_date, "birth_date")?;
    form::row(&mut c, y, ROW, &[Part::Label("生年月日", 90.0), Part::Value(&birth, "birth_date", 0.0, BODY, Align::Left)])?;
    y += ROW;
    form::frame(&mut c, LEFT, top, y);

    // The assessment.
    y += 16.0;
    let top = y;
    let basis = format!("{year}（{income_year}中の所得に基づく）");
    form::row(&mut c, y, ROW, &[Part::Label("年度", LABEL_W), Part::Value(&basis, "fiscal_year", 0.0, BODY, Align::Left)])?;
    y += ROW;
    let deductions = (cert.total_income - cert.taxable_income).max(0);
    let mut amounts: Vec<(&str, i64, &str)> = vec![
        ("総所得金額等", cert.total_income, "total_income"),
        ("所得控除額合計", deductions, "deductions"),
        ("課税標準額", cert.taxable_income, "taxable_income"),
    ];
    if cert.kind == TaxCertificateKind::Assessment {
        amounts.push(("市区町村民税額（年税額）", cert.municipal_tax, "municipal_tax"));
        amounts.push(("道府県民税額（年税額）", cert.prefectural_tax, "prefectural_tax"));
        amounts.push(("合計税額", cert.municipal_tax.saturating_add(cert.prefectural_tax), "total_tax"));
    }
    for (label, amount, field) in amounts {
        let text = format_yen(amount);
        form::row(&mut c, y, ROW, &[Part::Label(label, LABEL_W), Part::Value(&text, field, 0.0, AMOUNT, Align::Right)])?;
        y += ROW;
    }
    let status = if cert.exempt { "非課税" } else { "課税" };
    form::row(&mut c, y, ROW, &[Part::Label("課税区分", LABEL_W), Part::Value(status, "exempt", 0.0, NAME, Align::Left)])?;
    y += ROW;
    form::frame(&mut c, LEFT, top, y);
    form::blank_mark(&mut c, y)?;

    let sentence = match (cert.kind, cert.exempt) {
        (TaxCertificateKind::Assessment, false) => "上記のとおり課税されていることを証明する。",
        (TaxCertificateKind::Assessment, true) => "上記のとおり非課税であることを証明する。",
        (TaxCertificateKind::Income, _) => "上記のとおり所得があったことを証明する。",
    };
    form::certification(&mut c, sentence, cert.issued_on, &cert.municipality, &cert.certificate_id)?;
    Ok(form::copies(vec![c.finish()], cert.copies))
}
