use super::*;

#[test]
fn ping_round_trips() {
    let m = Message::Ping {
        nonce: 300,
        stamp: None,
    };
    assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
}
