//! A policy file: the module's options as one JSON object.

use crate::core::args::parse_args;
use crate::core::policy::Config;
use crate::system::System;
use anyhow::{Context, Result, anyhow};
use std::path::Path;

/// Reads and checks a policy file. Ansible's internal `_ansible_*` keys are not options here.
pub fn load(path: &Path, system: &dyn System) -> Result<Config> {
    let shown = path.display();
    let text = system
        .read_file(path)
        .with_context(|| format!("cannot read the policy file {shown}"))?
        .ok_or_else(|| anyhow!("the policy file {shown} does not exist"))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("the policy file {shown} is not valid JSON: {e}"))?;
    if let Some(key) = value
        .as_object()
        .and_then(|o| o.keys().find(|k| k.starts_with("_ansible_")))
    {
        return Err(anyhow!(
            "{shown}: {key}: not an option (use --check / --diff on the command line)"
        ));
    }
    parse_args(&value).map_err(|e| anyhow!("{shown}: {e}"))
}
