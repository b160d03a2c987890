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
