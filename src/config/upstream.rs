//! `upstream:`: connections to providers.

use std::path::Path;
use std::time::Duration;

use super::raw::RawUpstream;
use super::{ConfigError, UpstreamSettings};

pub(super) fn validate(u: RawUpstream) -> Result<UpstreamSettings, ConfigError> {
    if let Some(ca) = &u.ca_file {
        if !Path::new(ca).is_file() {
            return Err(ConfigError::new(
                "upstream.ca_file",
                format!("file {ca} does not exist"),
            ));
        }
    }
    let upstream = UpstreamSettings {
        ca_file: u.ca_file,
        keepalive_pool_size: u.keepalive_pool_size.unwrap_or(256),
        keepalive_idle: u.keepalive_idle.map_or(Duration::from_secs(60), |d| d.0),
        max_h2_streams: u.max_h2_streams.unwrap_or(100),
    };
    if upstream.max_h2_streams == 0 {
        return Err(ConfigError::new(
            "upstream.max_h2_streams",
            "must be at least 1",
        ));
    }
    Ok(upstream)
}
