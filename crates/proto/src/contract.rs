//! Rules both sides of the wire share, so a client can check what the
//! server will check (and say so before a round trip): the shortest
//! password, the longest message and search query, and how a replica is named on command
//! lines.

/// Shortest new password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest message body a server takes, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 4096;

/// Longest search query a server takes, in bytes of UTF-8 (after trimming
/// surrounding blanks).
pub const MAX_SEARCH_QUERY_BYTES: usize = 256;

/// One replica as `ID=HOST:PORT`, e.g. `2=host2:7002` → (2, "host2:7002").
/// Shared by `chatd --replica-urls`, `chatctl members add` and `chatctl certs`.
pub fn parse_member(item: &str) -> Result<(u64, String), String> {
    let (id, url) = item
        .split_once('=')
        .ok_or_else(|| format!("'{item}' is not ID=HOST:PORT (e.g. 2=host2:7002)"))?;
    let id: u64 = id
        .trim()
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| format!("'{item}': the id must be a positive integer"))?;
    let url = parse_host_port(url.trim()).map_err(|e| format!("'{item}': {e}"))?;
    Ok((id, url))
}

/// `HOST:PORT` (an `http://` prefix is dropped), with a port in 1-65535.
pub fn parse_host_port(s: &str) -> Result<String, String> {
    let s = s.strip_prefix("http://").unwrap_or(s);
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not HOST:PORT"))?;
    if host.is_empty() {
        return Err(format!("'{s}' has an empty host; expected HOST:PORT"));
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("'{s}' has a bad port; expected HOST:PORT with PORT in 1-65535"))?;
    Ok(s.to_string())
}
