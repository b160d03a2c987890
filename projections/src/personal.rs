//! Which fields of a change event are personal data, and how an event splits into the part that may stay
//! readable in the log and the part that is sealed under the resident's key.
//!
//! The split is the single definition of "personal" for the whole engine: sealing (engine), the fold of an
//! event whose key was erased, and the erasure of a forgotten resident from the projection
//! (`State::apply_forgotten`) all follow it, so a replay with or without the keys ends in the same state.
//!
//! Personal: names and their kana, birth date, address, previous address, registered domicile and its head
//! (筆頭者), personal number, seal impression, tax amounts, the move-out destination. Kept readable: ids,
//! dates of change, sex, relationship, household membership, flags, fiscal year, the seal registration
//! number: what sequencing and eligibility need and what identifies no one without the registry itself.

use bcl_proto::change_event::Body;
use bcl_proto::{
    ChangeEvent, FamilyRegisterRecorded, MoveOutFiled, ResidentChanged, ResidentRegistered, SealRegistered, TaxAssessed,
};

/// The resident whose key seals `ev`, for the kinds that carry personal fields; `None` for the others
/// (cards, removals, support measures, seal abolition, damage), which are logged as they are.
pub fn sealed_subject(ev: &ChangeEvent) -> Option<&str> {
    match ev.body.as_ref()? {
        Body::ResidentRegistered(r) => Some(&r.resident_id),
        Body::ResidentChanged(c) => Some(&c.resident_id),
        Body::MoveOutFiled(m) => Some(&m.resident_id),
        Body::SealRegistered(s) => Some(&s.resident_id),
        Body::TaxAssessed(t) => Some(&t.resident_id),
        Body::FamilyRegisterRecorded(f) => Some(&f.resident_id),
        _ => None,
    }
}

/// The resident an event is about, whatever its kind (`None` for card revocations and damage, which name a
/// card or a household).
pub fn event_resident(ev: &ChangeEvent) -> Option<&str> {
    match ev.body.as_ref()? {
        Body::ResidentRemoved(r) => Some(&r.resident_id),
        Body::SupportMeasureChanged(s) => Some(&s.resident_id),
        Body::SealAbolished(s) => Some(&s.resident_id),
        Body::CardIssued(c) => Some(&c.resident_id),
        Body::CardRevoked(_) | Body::DamageCertified(_) => None,
        _ => sealed_subject(ev),
    }
}

/// Splits an event of a sealed kind into (event without its personal fields, event holding only them).
/// The second has no municipality, sequence or id: its protobuf encoding is the sealed plaintext, and
/// `prost::Message::merge` of that encoding into the first gives back `ev` exactly (proto3 omits default
/// scalars, and prost merges a oneof message into the variant already present). `None` for other kinds.
pub fn split(ev: &ChangeEvent) -> Option<(ChangeEvent, ChangeEvent)> {
    let mut clear = ev.clone();
    let personal = match clear.body.as_mut()? {
        Body::ResidentRegistered(r) => Body::ResidentRegistered(ResidentRegistered {
            family_name: std::mem::take(&mut r.family_name),
            given_name: std::mem::take(&mut r.given_name),
            family_name_kana: std::mem::take(&mut r.family_name_kana),
            given_name_kana: std::mem::take(&mut r.given_name_kana),
            birth_date: std::mem::take(&mut r.birth_date),
            address: std::mem::take(&mut r.address),
            previous_address: std::mem::take(&mut r.previous_address),
            registered_domicile: std::mem::take(&mut r.registered_domicile),
            domicile_head: std::mem::take(&mut r.domicile_head),
            personal_number: std::mem::take(&mut r.personal_number),
            ..Default::default()
        }),
        Body::ResidentChanged(c) => Body::ResidentChanged(ResidentChanged {
            family_name: c.family_name.take(),
            given_name: c.given_name.take(),
            family_name_kana: c.family_name_kana.take(),
            given_name_kana: c.given_name_kana.take(),
            address: c.address.take(),
            registered_domicile: c.registered_domicile.take(),
            domicile_head: c.domicile_head.take(),
            ..Default::default()
        }),
        Body::MoveOutFiled(m) => {
            Body::MoveOutFiled(MoveOutFiled { destination: std::mem::take(&mut m.destination), ..Default::default() })
        }
        Body::SealRegistered(s) => Body::SealRegistered(SealRegistered {
            seal_image_png: std::mem::take(&mut s.seal_image_png),
            ..Default::default()
        }),
        Body::TaxAssessed(t) => Body::TaxAssessed(TaxAssessed {
            total_income: std::mem::take(&mut t.total_income),
            taxable_income: std::mem::take(&mut t.taxable_income),
            municipal_tax: std::mem::take(&mut t.municipal_tax),
            prefectural_tax: std::mem::take(&mut t.prefectural_tax),
            ..Default::default()
        }),
        Body::FamilyRegisterRecorded(f) => Body::FamilyRegisterRecorded(FamilyRegisterRecorded {
            domicile: std::mem::take(&mut f.domicile),
            head: std::mem::take(&mut f.head),
            ..Default::default()
        }),
        _ => return None,
    };
    Some((clear, ChangeEvent { body: Some(personal), ..Default::default() }))
}

/// `ev` without its personal fields (unchanged for kinds that have none).
pub fn redact(ev: &ChangeEvent) -> ChangeEvent {
    split(ev).map_or_else(|| ev.clone(), |(clear, _)| clear)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use prost::Message;

    #[test]
    fn split_then_merge_gives_back_the_event_for_every_sealed_kind() {
        let bodies = vec![
            registered("S", "HH1", false, "1982-07-07"),
            Body::ResidentChanged(ResidentChanged {
                resident_id: "S".into(),
                family_name: Some("佐藤".into()),
                given_name: Some(String::new()), // present but empty must survive
                address: Some("東京都千代田区1-1".into()),
                household_id: Some("HH2".into()),
                household_head: Some(false),
                ..Default::default()
            }),
            Body::MoveOutFiled(MoveOutFiled {
                resident_id: "S".into(),
                planned_date: "2026-05-01".into(),
                destination: "大阪府".into(),
            }),
            Body::SealRegistered(SealRegistered {
                resident_id: "S".into(),
                registration_number: "R1".into(),
                seal_image_png: vec![1, 2, 3],
            }),
            Body::TaxAssessed(TaxAssessed {
                resident_id: "S".into(),
                fiscal_year: 2026,
                total_income: 5_000_000,
                taxable_income: 3_000_000,
                municipal_tax: 180_000,
                prefectural_tax: 120_000,
            }),
            Body::FamilyRegisterRecorded(FamilyRegisterRecorded {
                resident_id: "S".into(),
                register_id: "F1".into(),
                domicile: "東京都".into(),
                head: "山田太郎".into(),
            }),
        ];
        for body in bodies {
            let ev = event(3, body);
            assert_eq!(sealed_subject(&ev), Some("S"));
            let (mut clear, personal) = split(&ev).expect("sealed kind");
            assert_eq!(clear.event_id, ev.event_id);
            assert_ne!(clear, ev, "something personal was removed");
            assert!(personal.event_id.is_empty() && personal.municipality_code.is_empty());
            clear.merge(personal.encode_to_vec().as_slice()).unwrap();
            assert_eq!(clear, ev);
            assert_eq!(clear.encode_to_vec(), ev.encode_to_vec(), "byte-identical re-encoding");
        }
    }

    #[test]
    fn kinds_without_personal_fields_are_not_split() {
        let ev = event(4, card("S", "K-1"));
        assert_eq!(sealed_subject(&ev), None);
        assert_eq!(event_resident(&ev), Some("S"));
        assert!(split(&ev).is_none());
        assert_eq!(redact(&ev), ev);
    }
}
