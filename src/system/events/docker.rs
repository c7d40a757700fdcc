//! Docker's event stream, read-only, over its API socket (hyper speaks the HTTP/1.1, chunked
//! body included). Only the events that publish or unpublish ports are asked for.

use super::Trigger;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

/// `filters={"type":["container","network"],"event":["start","die","destroy","connect","disconnect"]}`,
/// URL-encoded.
const EVENTS_PATH: &str = "/events?filters=%7B%22type%22%3A%5B%22container%22%2C%22network%22%5D%2C\
%22event%22%3A%5B%22start%22%2C%22die%22%2C%22destroy%22%2C%22connect%22%2C%22disconnect%22%5D%7D";

/// How often a missing Docker is looked for again.
const RECONNECT: Duration = Duration::from_secs(1);

/// Follows the stream for ever: reconnects when Docker goes away, and says so once per change.
pub async fn follow(socket: PathBuf, tx: Sender<Trigger>) {
    let mut waiting = false;
    loop {
        let outcome = stream(&socket, &tx, &mut waiting).await;
        let line = match outcome {
            Ok(()) => format!("Docker's event stream at {} ended", socket.display()),
            Err(e) => format!("waiting for Docker at {}: {e:#}", socket.display()),
        };
        if !waiting {
            waiting = true;
            if tx.send(Trigger::DockerGone(line)).is_err() {
                return;
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn stream(socket: &Path, tx: &Sender<Trigger>, waiting: &mut bool) -> Result<()> {
    let response = get(socket, EVENTS_PATH).await?;
    if *waiting {
        let _ = tx.send(Trigger::Note(format!(
            "Docker's event stream at {} is followed",
            socket.display()
        )));
    }
    *waiting = false;
    // Docker may have (re)written its rules while we were not connected.
    let _ = tx.send(Trigger::DockerConnected);
    let mut body = response.into_body();
    let mut line = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the event stream")?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        for &byte in data.iter() {
            if byte != b'\n' {
                line.push(byte);
                continue;
            }
            if let Some(what) = describe(&line) {
                tx.send(Trigger::Docker(what))
                    .context("the watcher stopped")?;
            }
            line.clear();
        }
    }
    Ok(())
}

/// Container names by address (`GET /containers/json`), for the exposure report; gives up after
/// 3 s (a Docker that does not answer names nothing).
pub fn container_names(socket: &Path) -> Result<BTreeMap<IpAddr, String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let list = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), get_json(socket, "/containers/json"))
            .await
            .context("Docker did not answer within 3 s")?
    })?;
    Ok(names_by_address(&list))
}

/// One GET on Docker's API socket; the response's body is still to be read.
async fn get(socket: &Path, path: &str) -> Result<Response<Incoming>> {
    let connection = tokio::net::UnixStream::connect(socket)
        .await
        .context("cannot connect")?;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(connection))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(driver);
    let request = Request::get(path)
        .header("Host", "docker")
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let shown = path.split('?').next().unwrap_or(path);
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("GET {shown}"))?;
    if !response.status().is_success() {
        bail!("GET {shown} answered {}", response.status());
    }
    Ok(response)
}

async fn get_json(socket: &Path, path: &str) -> Result<serde_json::Value> {
    let body = get(socket, path)
        .await
        .with_context(|| format!("Docker at {}", socket.display()))?
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading GET {path}"))?
        .to_bytes();
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
}

/// Each container's addresses (every network, both families) to its name, without Docker's `/`.
fn names_by_address(list: &serde_json::Value) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for container in list.as_array().into_iter().flatten() {
        let Some(name) = container["Names"][0].as_str() else {
            continue;
        };
        let networks = container["NetworkSettings"]["Networks"].as_object();
        for network in networks.into_iter().flat_map(|n| n.values()) {
            for key in ["IPAddress", "GlobalIPv6Address"] {
                if let Some(addr) = network[key].as_str().and_then(|a| a.parse().ok()) {
                    out.insert(addr, name.trim_start_matches('/').to_string());
                }
            }
        }
    }
    out
}

/// "container web start", from one JSON event; None for what is not an event.
fn describe(line: &[u8]) -> Option<String> {
    let event: serde_json::Value = serde_json::from_slice(line).ok()?;
    let kind = event.get("Type")?.as_str()?;
    let action = event.get("Action")?.as_str()?;
    let name = event
        .pointer("/Actor/Attributes/name")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    Some(
        [kind, name, action]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::{describe, names_by_address};
    use std::net::IpAddr;

    #[test]
    fn names_containers_by_every_address() {
        let list = serde_json::json!([{
            "Names": ["/web"],
            "NetworkSettings": {"Networks": {
                "bridge": {"IPAddress": "172.17.0.2", "GlobalIPv6Address": "fd00::2"},
                "app": {"IPAddress": "172.18.0.3", "GlobalIPv6Address": ""}
            }}
        }, {"Names": []}]);
        let names = names_by_address(&list);
        assert_eq!(names.len(), 3);
        assert_eq!(names[&"172.18.0.3".parse::<IpAddr>().unwrap()], "web");
        assert_eq!(names[&"fd00::2".parse::<IpAddr>().unwrap()], "web");
    }

    #[test]
    fn an_event_line_names_kind_actor_and_action() {
        let line = br#"{"Type":"container","Action":"start","Actor":{"ID":"ab","Attributes":{"name":"web"}}}"#;
        assert_eq!(describe(line).as_deref(), Some("container web start"));
        assert_eq!(describe(b"not json"), None);
    }
}
