//! The JSON Lines interchange format is the proto3 canonical JSON mapping of ChangeEvent.
use bcl_proto::{change_event::Body, ChangeEvent, ResidentRegistered, Sex};

#[test]
fn change_event_uses_lower_camel_case_and_enum_names() {
    let ev = ChangeEvent {
        municipality_code: "131016".into(),
        source_seq: 7,
        event_id: "0d9b3c1e-2a4f-4c55-9a6e-1f2b3c4d5e6f".into(),
        effective_date: "2026-04-01".into(),
        body: Some(Body::ResidentRegistered(ResidentRegistered {
            resident_id: "R1".into(),
            family_name: "𠮷田".into(),
            sex: Sex::Female as i32,
            ..Default::default()
        })),
    };
    let json = serde_json::to_value(&ev).unwrap();
    assert_eq!(json["municipalityCode"], "131016");
    assert_eq!(json["sourceSeq"], "7", "uint64 is a string in canonical JSON");
    assert_eq!(json["residentRegistered"]["sex"], "FEMALE");
    assert_eq!(json["residentRegistered"]["familyName"], "𠮷田");
    let back: ChangeEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, ev);
}

#[test]
fn unknown_enum_name_is_rejected() {
    let line = r#"{"municipalityCode":"131016","sourceSeq":1,"eventId":"x","residentRemoved":{"residentId":"R1","reason":"EMIGRATED"}}"#;
    let err = serde_json::from_str::<ChangeEvent>(line).unwrap_err();
    assert!(err.to_string().contains("EMIGRATED"), "{err}");
}

#[test]
fn seal_image_is_base64() {
    let line = r#"{"municipalityCode":"131016","sourceSeq":"2","eventId":"y","sealRegistered":{"residentId":"R1","registrationNumber":"1","sealImagePng":"iVBORw=="}}"#;
    let ev: ChangeEvent = serde_json::from_str(line).unwrap();
    match ev.body {
        Some(Body::SealRegistered(s)) => assert_eq!(s.seal_image_png, vec![0x89, b'P', b'N', b'G']),
        other => panic!("unexpected body {other:?}"),
    }
}
