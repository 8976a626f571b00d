//! Tool names as models see them: `mcp__<server>__<tool>`, sanitised to `[A-Za-z0-9_-]` and
//! at most [`MAX_TOOL_NAME`] characters.
//!
//! Guarantees: a name is a pure function of the server name, the tool's own name and the
//! other names of the same hub (collisions), so the same configuration yields the same names
//! on every start (checkpoints and policies keep naming the same tools). A name that is too
//! long, or that collides with another after sanitising, ends in `_` and eight hex digits of
//! a hash of the raw server and tool names. What it does not do: read the names back —
//! the hub keeps the table from exposed name to (server, tool).

use std::collections::BTreeMap;

/// Longest tool name (what the provider APIs accept).
pub const MAX_TOOL_NAME: usize = 64;
const HASH_LEN: usize = 9; // "_" + 8 hex digits

/// The base name of `tool` on `server`: `mcp__server__tool`, characters outside
/// `[A-Za-z0-9_-]` replaced by `_`, capped with a hash suffix when longer than
/// [`MAX_TOOL_NAME`].
pub fn exposed_name(server: &str, tool: &str) -> String {
    let sanitised: String = tool
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    let name = format!("mcp__{}__{}", sanitise(server), sanitised);
    if name.len() <= MAX_TOOL_NAME { name } else { hashed(&name, server, tool) }
}

/// `base` cut so that `_` + eight hex digits of the hash of (server, tool) fit.
pub fn hashed(base: &str, server: &str, tool: &str) -> String {
    let keep = MAX_TOOL_NAME - HASH_LEN;
    // Every character of a sanitised name is ASCII, so byte indexes are character indexes.
    let cut = &base[..base.len().min(keep)];
    format!("{cut}_{:08x}", fnv1a(server, tool) as u32)
}

fn sanitise(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// FNV-1a over `server`, a zero byte and `tool`: stable across builds and platforms (the
/// standard library's hasher is not).
fn fnv1a(server: &str, tool: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in server.bytes().chain(std::iter::once(0)).chain(tool.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Names for every (server, tool) pair: the base name when it is unique, otherwise — for
/// every pair after the first of a colliding group, in (server, tool) order — the hashed
/// form. Returns the names in input order, or the pairs that still collide (two identical
/// pairs: a server that lists one tool twice).
pub fn assign(pairs: &[(String, String)]) -> Result<Vec<String>, Vec<(String, String)>> {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by(|&a, &b| pairs[a].cmp(&pairs[b]));
    let mut names = vec![String::new(); pairs.len()];
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let bases: Vec<String> = pairs.iter().map(|(s, t)| exposed_name(s, t)).collect();
    // Unique base names first, so a hashed name never takes a later pair's plain name.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &bases {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    let mut first_of_group: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in &order {
        first_of_group.entry(bases[i].as_str()).or_insert(i);
    }
    for &i in &order {
        let base = &bases[i];
        if counts[base.as_str()] == 1 || first_of_group[base.as_str()] == i {
            names[i] = base.clone();
            taken.insert(base.clone(), i);
        }
    }
    let mut clashes = Vec::new();
    for &i in &order {
        if !names[i].is_empty() {
            continue;
        }
        let (server, tool) = &pairs[i];
        let name = hashed(&bases[i], server, tool);
        if let Some(&other) = taken.get(&name) {
            clashes.push(pairs[other].clone());
            clashes.push(pairs[i].clone());
            continue;
        }
        taken.insert(name.clone(), i);
        names[i] = name;
    }
    if clashes.is_empty() { Ok(names) } else { Err(clashes) }
}

#[cfg(test)]
mod tests;
