//! The STUN client's datagram path: any bytes from a server it asks. Only an answer to
//! its own transaction is taken, and nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::stun::{binding_success, StunClient, StunEvent, StunOutput};
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let server = "127.0.0.1:3478".parse().unwrap();
    let now = Instant::now();
    let mut c = StunClient::new(vec![server], 1, now);
    c.start(now);
    let StunOutput::Transmit { data: request, .. } = c.poll_output() else {
        panic!("a request first");
    };
    if c.handle_datagram(now, server, data) {
        // Taken: it carried our transaction id, and the client is done with the server.
        assert_eq!(&data[8..20], &request[8..20]);
        assert!(matches!(c.poll_output(), StunOutput::Event(_)));
        assert!(!c.is_asking());
    }
    // The bytes as a request: a server's answer to it parses back.
    if let Some(answer) = binding_success(data, "192.0.2.1:9".parse().unwrap()) {
        let mut d = StunClient::new(vec![server], 2, now);
        d.start(now);
        let _ = d.poll_output();
        let _ = d.handle_datagram(now, server, &answer);
        let _ = matches!(d.poll_output(), StunOutput::Event(StunEvent::Mapped { .. }));
    }
});
