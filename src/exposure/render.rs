//! The report as people read it: one row per published port and family.

use super::{Exposure, PortExposure, Verdict};

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Open => "open",
        Verdict::Restricted => "restricted",
        Verdict::Closed => "closed",
        Verdict::Unknown => "unknown",
    }
}

fn host(p: &PortExposure) -> String {
    let addr = if p.host_address.contains(':') {
        format!("[{}]", p.host_address)
    } else {
        p.host_address.clone()
    };
    match p.host_port_end {
        Some(end) => format!("{addr}:{}-{end}", p.host_port),
        None => format!("{addr}:{}", p.host_port),
    }
}

fn destination(p: &PortExposure) -> String {
    let to = match (&p.container_address, p.container_port) {
        (Some(a), Some(port)) if a.contains(':') => format!("[{a}]:{port}"),
        (Some(a), Some(port)) => format!("{a}:{port}"),
        _ => "docker-proxy".to_string(),
    };
    match &p.container {
        Some(name) => format!("{to} ({name})"),
        None => to,
    }
}

/// `ipv4 8080/tcp -> 172.17.0.2:80 (web)`.
pub fn port_words(p: &PortExposure) -> String {
    let port = match p.host_port_end {
        Some(end) => format!("{}-{end}", p.host_port),
        None => p.host_port.to_string(),
    };
    format!("{} {port}/{} -> {}", p.family, p.proto, destination(p))
}

/// `open to anyone`, `only 203.0.113.0/24`, `closed`, `unknown`: the words the diff uses too.
pub fn who_can_connect(p: &PortExposure) -> String {
    match p.verdict {
        Verdict::Open => "open to anyone".into(),
        Verdict::Restricted => format!("only {}", p.sources.join(", ")),
        Verdict::Closed => "closed".into(),
        Verdict::Unknown => "unknown".into(),
    }
}

pub fn summary_line(e: &Exposure) -> String {
    let s = &e.summary;
    format!(
        "{} published port(s) and families: {} open, {} restricted, {} closed, {} unknown",
        e.ports.len(),
        s.open,
        s.restricted,
        s.closed,
        s.unknown
    )
}

pub fn render_text(e: &Exposure) -> String {
    let mut out = format!(
        "From outside (interfaces {}):\n",
        if e.external_interfaces.is_empty() {
            "unknown".to_string()
        } else {
            e.external_interfaces.join(", ")
        }
    );
    let rows: Vec<[String; 6]> = e
        .ports
        .iter()
        .map(|p| {
            [
                p.family.to_string(),
                p.proto.clone(),
                host(p),
                destination(p),
                verdict_word(p.verdict).to_string(),
                match p.verdict {
                    Verdict::Restricted => p.sources.join(", "),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    let header = ["FAMILY", "PROTO", "HOST", "TO", "VERDICT", "SOURCES"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String; 6]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    out.push_str(&line(&header));
    out.push('\n');
    for (row, p) in rows.iter().zip(&e.ports) {
        out.push_str(&line(row));
        out.push('\n');
        out.push_str(&format!("    why: {}\n", p.rule));
    }
    out.push_str(&summary_line(e));
    out.push('\n');
    for note in &e.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}
