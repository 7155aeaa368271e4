//! The HTTPS client of the HTTP adapters (Balances API, exchange).
//!
//! TLS is rustls 0.23 with aws-lc-rs, the AWS SDK's own stack (reqwest's
//! `rustls` feature; deny.toml keeps it the only one). The trusted roots are
//! Mozilla's, compiled in, not the OS store: loading the OS store reads and
//! parses every file under /etc/ssl/certs, once per client at every cold
//! start (infra/BENCHMARKS.md, "Lambda binaries"), while these are already
//! DER in the binary. They are what reqwest 0.12's `rustls-tls` trusted too.

use std::time::Duration;

/// A client whose every request gives up after `timeout`.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| reqwest::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()?;
    reqwest::Client::builder()
        .timeout(timeout)
        .tls_certs_only(roots)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_in_root_is_accepted() {
        assert!(!webpki_root_certs::TLS_SERVER_ROOT_CERTS.is_empty());
        client(Duration::from_secs(1)).expect("the client builds with the compiled-in roots");
    }
}
