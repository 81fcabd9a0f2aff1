//! A DTLS provider for simulations: str0m's own DTLS (dimpl, with AWS-LC crypto) whose
//! non-key randomness comes from a fixed-seed generator.
//!
//! dimpl jitters its handshake retransmission timers (±25 %) from the thread's random
//! generator, so a simulation with lost datagrams would retransmit at different
//! simulated instants from run to run. With this provider the timers, the handshake
//! randoms and the record nonces are drawn from a generator seeded with a constant;
//! certificates and key exchange stay random. It is selected by
//! [`NodeConfig::seeded_dtls`](crate::node::NodeConfig::seeded_dtls) and is meant for
//! simulations only.

use std::sync::Arc;
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
};
use str0m::crypto::CryptoProvider;

/// The seed: any constant gives repeatable timers.
const SEED: u64 = 0x6d65_7368;

#[derive(Debug)]
struct SeededDtls;

static SEEDED_DTLS: SeededDtls = SeededDtls;

/// str0m's default crypto provider with [`SeededDtls`] in place of its DTLS provider.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    let mut p = str0m::crypto::from_feature_flags();
    p.dtls_provider = &SEEDED_DTLS;
    Arc::new(p)
}

impl DtlsProvider for SeededDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        dimpl::certificate::generate_self_signed_certificate().ok()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, str0m::crypto::CryptoError> {
        // As str0m's provider: ICE has proven return routability, so no cookie.
        let mut builder = dimpl::Config::builder()
            .use_server_cookie(false)
            .dangerously_set_rng_seed(SEED);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| str0m::crypto::CryptoError::Other(format!("dimpl config: {e}")))?,
        );
        let cert = cert.clone();
        let dtls = match version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert, now),
            other => {
                return Err(str0m::crypto::CryptoError::Other(format!(
                    "unsupported DTLS version {other}"
                )))
            }
        };
        Ok(Box::new(Instance(dtls)))
    }
}

struct Instance(dimpl::Dtls);

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededDtlsInstance")
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }
    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }
    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }
    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }
    fn is_active(&self) -> bool {
        self.0.is_active()
    }
    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }
    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }
    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}
