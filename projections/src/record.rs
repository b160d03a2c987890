//! Ready-to-render records: everything a certificate layout prints, already decided and formatted by the
//! domain. The renderer makes no decisions about *what* to print, only *where*.

/// A calendar date (Japan time). Rendering turns it into the Japanese era form (令和8年4月1日).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

/// The issuing municipality as printed on every sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MunicipalityHeader {
    pub code: String,
    /// e.g. 東京都千代田区
    pub name: String,
    /// e.g. 千代田区長
    pub mayor_title: String,
    /// e.g. 山田　太郎 (may be empty)
    pub mayor_name: String,
}

/// 住民票の写し (RESIDENT_RECORD), kiosk household style (世帯連記式).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRecordCertificate {
    pub municipality: MunicipalityHeader,
    pub certificate_id: String,
    /// Date of issue (the issuance's recorded clock, Japan time).
    pub issued_on: Date,
    /// The household's address (住所).
    pub address: String,
    /// 世帯主 name, printed only when the request asked for 世帯主・続柄.
    pub household_head_name: Option<String>,
    /// true when every current member of the household is listed (世帯全員), false for selected members.
    pub whole_household: bool,
    /// In household order (head first, then by the municipality's order of registration).
    pub persons: Vec<PersonEntry>,
    /// Number of copies requested; each copy is the same sheets again.
    pub copies: u32,
}

/// One person's column on the sheet. Optional items are `Some` exactly when they are to be printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonEntry {
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: Date,
    pub sex: Sex,
    /// 続柄 (only when requested)
    pub relationship: Option<String>,
    /// 住民となった日
    pub resident_since: Date,
    /// 住所を定めた日
    pub address_since: Date,
    /// 前住所 (転入元), when known
    pub previous_address: Option<String>,
    /// 本籍 (only when requested)
    pub registered_domicile: Option<String>,
    /// 筆頭者 (only when requested)
    pub domicile_head: Option<String>,
    /// 個人番号, 12 digits (only when requested and the municipality allows it)
    pub personal_number: Option<String>,
}

/// Persons per sheet in the kiosk household layout.
pub const PERSONS_PER_SHEET: usize = 4;

impl ResidentRecordCertificate {
    /// Sheets of one copy: ceil(persons / 4), at least 1.
    pub fn sheets_per_copy(&self) -> u32 {
        self.persons.len().div_ceil(PERSONS_PER_SHEET).max(1) as u32
    }
}

/// 住民票記載事項証明書 (RESIDENT_RECORD_ITEMS): certifies the selected items of the listed persons only.
/// 氏名, 生年月日, 性別 and 住所 are always certified; the optional items are `Some` exactly when selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRecordItemsCertificate {
    pub municipality: MunicipalityHeader,
    pub certificate_id: String,
    pub issued_on: Date,
    pub address: String,
    /// 世帯主 name, when 世帯主・続柄 was selected.
    pub household_head_name: Option<String>,
    pub persons: Vec<ItemsPerson>,
    pub copies: u32,
}

/// One person of a 住民票記載事項証明書: only what was selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemsPerson {
    pub family_name: String,
    pub given_name: String,
    pub birth_date: Date,
    pub sex: Sex,
    pub relationship: Option<String>,
    pub registered_domicile: Option<String>,
    pub domicile_head: Option<String>,
    pub personal_number: Option<String>,
}

impl ResidentRecordItemsCertificate {
    pub fn sheets_per_copy(&self) -> u32 {
        self.persons.len().div_ceil(PERSONS_PER_SHEET).max(1) as u32
    }
}

/// 印鑑登録証明書 (SEAL_REGISTRATION): the registered impression and the registered person.
#[derive(Clone, PartialEq, Eq)]
pub struct SealCertificate {
    pub municipality: MunicipalityHeader,
    pub certificate_id: String,
    pub issued_on: Date,
    pub registration_number: String,
    pub family_name: String,
    pub given_name: String,
    pub birth_date: Date,
    pub sex: Sex,
    pub address: String,
    /// The impression as registered (PNG). Reproduced at 1:1: its physical size comes from the PNG's
    /// resolution, never from the layout.
    pub seal_image_png: Vec<u8>,
    pub copies: u32,
}

/// The seal image is personal data: keep it (and the rest) out of debug output.
impl std::fmt::Debug for SealCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealCertificate").field("certificate_id", &self.certificate_id).finish_non_exhaustive()
    }
}

/// Which tax certificate: 課税/非課税証明書 or 所得証明書. Both print the same assessment; they differ in what
/// they certify and so in their title and certification sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxCertificateKind {
    Assessment,
    Income,
}

/// 課税/非課税証明書 (TAX_ASSESSMENT) and 所得証明書 (INCOME) of one fiscal year, for the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxCertificate {
    pub kind: TaxCertificateKind,
    pub municipality: MunicipalityHeader,
    pub certificate_id: String,
    pub issued_on: Date,
    /// The fiscal year (年度) of the assessment, e.g. 2026 for 令和8年度 (1 April 2026 to 31 March 2027).
    pub fiscal_year: u32,
    pub family_name: String,
    pub given_name: String,
    pub birth_date: Date,
    pub address: String,
    pub total_income: i64,
    pub taxable_income: i64,
    pub municipal_tax: i64,
    pub prefectural_tax: i64,
    /// 非課税: both taxes are 0.
    pub exempt: bool,
    pub copies: u32,
}

impl TaxCertificate {
    /// The calendar year whose income the fiscal year's assessment is based on (前年所得).
    pub fn income_year(&self) -> i32 {
        self.fiscal_year as i32 - 1
    }
}

/// Which family-register certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyRegisterKind {
    /// 戸籍全部事項証明書: every person of the register.
    Full,
    /// 戸籍個人事項証明書: the selected persons of the register.
    Personal,
    /// 戸籍の附票の写し: address history of the register's persons.
    Annex,
}

/// 戸籍全部事項証明書, 戸籍個人事項証明書 and 戸籍の附票の写し: a register kept by this municipality (本籍地).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRegisterCertificate {
    pub kind: FamilyRegisterKind,
    pub municipality: MunicipalityHeader,
    pub certificate_id: String,
    pub issued_on: Date,
    /// 本籍
    pub domicile: String,
    /// 筆頭者氏名
    pub head: String,
    /// In registration order of the municipality's records.
    pub persons: Vec<RegisterPerson>,
    pub copies: u32,
}

/// One person recorded in a family register (and, for the annex, their address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterPerson {
    pub family_name: String,
    pub given_name: String,
    pub birth_date: Date,
    pub sex: Sex,
    /// Current address and the date it was set (附票 only; `None` on the register certificates).
    pub address: Option<(String, Date)>,
    /// The address before it (附票 only, when known).
    pub previous_address: Option<String>,
}

/// Persons per sheet on the family-register certificates.
pub const REGISTER_PERSONS_PER_SHEET: usize = 4;

impl FamilyRegisterCertificate {
    pub fn sheets_per_copy(&self) -> u32 {
        self.persons.len().div_ceil(REGISTER_PERSONS_PER_SHEET).max(1) as u32
    }
}

/// 罹災証明書 (DISASTER_DAMAGE) for the applicant's household: one sheet per disaster the household's dwelling
/// was surveyed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisasterDamageCertificate {
    pub municipality: MunicipalityHeader,
    pub certificate_id: String,
    pub issued_on: Date,
    /// The applicant (世帯の代表として申請した者).
    pub applicant_name: String,
    /// 被災住家の所在地: the household's address.
    pub address: String,
    /// Current members of the household, household order.
    pub household_names: Vec<String>,
    /// One per disaster, in log order of the survey results (the latest result per disaster).
    pub damages: Vec<DamageEntry>,
    pub copies: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamageEntry {
    pub disaster_name: String,
    pub disaster_date: Date,
    /// The grade's printed wording, e.g. 半壊 or 一部損壊（準半壊に至らない）.
    pub grade: String,
}

impl DisasterDamageCertificate {
    pub fn sheets_per_copy(&self) -> u32 {
        self.damages.len().max(1) as u32
    }
}

/// Any certificate the engine issues, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateDocument {
    ResidentRecord(ResidentRecordCertificate),
    ResidentRecordItems(ResidentRecordItemsCertificate),
    Seal(SealCertificate),
    Tax(TaxCertificate),
    FamilyRegister(FamilyRegisterCertificate),
    DisasterDamage(DisasterDamageCertificate),
}

impl CertificateDocument {
    pub fn certificate_id(&self) -> &str {
        match self {
            CertificateDocument::ResidentRecord(c) => &c.certificate_id,
            CertificateDocument::ResidentRecordItems(c) => &c.certificate_id,
            CertificateDocument::Seal(c) => &c.certificate_id,
            CertificateDocument::Tax(c) => &c.certificate_id,
            CertificateDocument::FamilyRegister(c) => &c.certificate_id,
            CertificateDocument::DisasterDamage(c) => &c.certificate_id,
        }
    }

    pub fn copies(&self) -> u32 {
        match self {
            CertificateDocument::ResidentRecord(c) => c.copies,
            CertificateDocument::ResidentRecordItems(c) => c.copies,
            CertificateDocument::Seal(c) => c.copies,
            CertificateDocument::Tax(c) => c.copies,
            CertificateDocument::FamilyRegister(c) => c.copies,
            CertificateDocument::DisasterDamage(c) => c.copies,
        }
        .max(1)
    }

    /// Sheets of one copy.
    pub fn sheets_per_copy(&self) -> u32 {
        match self {
            CertificateDocument::ResidentRecord(c) => c.sheets_per_copy(),
            CertificateDocument::ResidentRecordItems(c) => c.sheets_per_copy(),
            CertificateDocument::Seal(_) | CertificateDocument::Tax(_) => 1,
            CertificateDocument::FamilyRegister(c) => c.sheets_per_copy(),
            CertificateDocument::DisasterDamage(c) => c.sheets_per_copy(),
        }
    }

    /// The document title (PDF metadata and the sheet's heading). Never personal data.
    pub fn title(&self) -> &'static str {
        match self {
            CertificateDocument::ResidentRecord(_) => "住民票の写し",
            CertificateDocument::ResidentRecordItems(_) => "住民票記載事項証明書",
            CertificateDocument::Seal(_) => "印鑑登録証明書",
            CertificateDocument::Tax(t) => match (t.kind, t.exempt) {
                (TaxCertificateKind::Assessment, false) => "課税証明書",
                (TaxCertificateKind::Assessment, true) => "非課税証明書",
                (TaxCertificateKind::Income, _) => "所得証明書",
            },
            CertificateDocument::FamilyRegister(f) => match f.kind {
                FamilyRegisterKind::Full => "戸籍全部事項証明書",
                FamilyRegisterKind::Personal => "戸籍個人事項証明書",
                FamilyRegisterKind::Annex => "戸籍の附票の写し",
            },
            CertificateDocument::DisasterDamage(_) => "罹災証明書",
        }
    }
}

/// Yen with thousands separators as Japanese forms print them: 1,234,567円 (negative amounts, e.g. a loss,
/// with a leading △ as tax forms do).
pub fn format_yen(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    if amount < 0 {
        out.push('△');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out.push('円');
    out
}

#[cfg(test)]
mod tests {
    use super::format_yen;

    #[test]
    fn yen_with_thousands_separators() {
        for (amount, text) in [
            (0, "0円"),
            (999, "999円"),
            (1_000, "1,000円"),
            (123_456, "123,456円"),
            (1_234_567, "1,234,567円"),
            (-45_000, "△45,000円"),
            (i64::MIN, "△9,223,372,036,854,775,808円"),
        ] {
            assert_eq!(format_yen(amount), text);
        }
    }
}
