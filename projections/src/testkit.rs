//! Builders for unit tests: realistic events and a configured municipality.

use bcl_proto::change_event::Body;
use bcl_proto::log_leaf::Kind;
use bcl_proto::{
    admin_action, AdminAction, CardIssued, CertificateType, ChangeEvent, LogLeaf, MunicipalitySettings,
    ResidentRegistered, Sex,
};

use crate::state::State;

pub const CODE: &str = "131016";

pub fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

pub fn event(seq: u64, body: Body) -> ChangeEvent {
    ChangeEvent {
        municipality_code: CODE.into(),
        source_seq: seq,
        event_id: uuid(seq),
        effective_date: "2026-01-01".into(),
        body: Some(body),
    }
}

pub fn registered(id: &str, household: &str, head: bool, birth: &str) -> Body {
    Body::ResidentRegistered(ResidentRegistered {
        resident_id: id.into(),
        household_id: household.into(),
        family_name: "山田".into(),
        given_name: format!("名{id}"),
        family_name_kana: "ヤマダ".into(),
        given_name_kana: "ナ".into(),
        birth_date: birth.into(),
        sex: Sex::Female as i32,
        address: "東京都千代田区千代田1番1号".into(),
        household_head: head,
        relationship: if head { "世帯主".into() } else { "子".into() },
        resident_since: "2010-04-01".into(),
        address_since: "2010-04-01".into(),
        previous_address: String::new(),
        registered_domicile: "東京都千代田区千代田1番".into(),
        domicile_head: "山田　一郎".into(),
        personal_number: "123456789018".into(),
        gaiji_pending: false,
    })
}

pub fn card(id: &str, serial: &str) -> Body {
    Body::CardIssued(CardIssued { resident_id: id.into(), card_serial: serial.into() })
}

pub fn leaf(ev: ChangeEvent) -> LogLeaf {
    LogLeaf { kind: Some(Kind::ChangeEvent(ev)) }
}

pub fn admin(action: admin_action::Action) -> LogLeaf {
    LogLeaf { kind: Some(Kind::Admin(AdminAction { municipality_code: CODE.into(), at: String::new(), action: Some(action), actor: String::new() })) }
}

pub fn configure() -> LogLeaf {
    admin(admin_action::Action::UpdateSettings(MunicipalitySettings {
        municipality_code: CODE.into(),
        municipality_name: "東京都千代田区".into(),
        mayor_title: "千代田区長".into(),
        mayor_name: "千代田　花子".into(),
        enabled_types: vec![CertificateType::ResidentRecord as i32],
        ..Default::default()
    }))
}

/// Folds `leaves` from position 0 into a fresh state.
pub fn fold(leaves: &[LogLeaf]) -> State {
    let mut state = State::default();
    state.apply_all(0, leaves);
    state
}

/// A configured municipality with one household: head H (born 1980), spouse S, child C (born 2015), child
/// T (born 2010, turns 15 on 2025-06-01); cards K-H, K-S, K-C, K-T.
pub fn household_log() -> Vec<LogLeaf> {
    let bodies = [
        registered("H", "HH1", true, "1980-05-05"),
        registered("S", "HH1", false, "1982-07-07"),
        registered("C", "HH1", false, "2015-01-01"),
        registered("T", "HH1", false, "2010-06-01"),
        registered("X", "HH2", true, "1970-01-01"),
        card("H", "K-H"),
        card("S", "K-S"),
        card("C", "K-C"),
        card("T", "K-T"),
        card("X", "K-X"),
    ];
    let mut log = vec![configure()];
    log.extend(bodies.into_iter().enumerate().map(|(i, b)| leaf(event(i as u64 + 1, b))));
    log
}
