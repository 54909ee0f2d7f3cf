//! Dependency graph: start order, cycles spelled out, dependents of a unit.

use super::Unit;
use std::collections::{BTreeMap, BTreeSet};

/// Units sorted so that every dependency comes first; ties keep config order.
/// On a cycle, returns it spelled out (`a -> b -> a`).
pub fn start_order(units: &[Unit]) -> Result<Vec<String>, String> {
    let deps: BTreeMap<&str, Vec<&str>> = units
        .iter()
        .map(|u| {
            (
                u.name.as_str(),
                u.depends_on.iter().map(|d| d.unit.as_str()).collect(),
            )
        })
        .collect();
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    for u in units {
        let mut stack = Vec::new();
        visit(&u.name, &deps, &mut done, &mut stack, &mut order)?;
    }
    Ok(order)
}

fn visit<'a>(
    name: &'a str,
    deps: &BTreeMap<&'a str, Vec<&'a str>>,
    done: &mut BTreeSet<&'a str>,
    stack: &mut Vec<&'a str>,
    order: &mut Vec<String>,
) -> Result<(), String> {
    if done.contains(name) {
        return Ok(());
    }
    if let Some(pos) = stack.iter().position(|n| *n == name) {
        let mut cycle: Vec<&str> = stack[pos..].to_vec();
        cycle.push(name);
        return Err(cycle.join(" -> "));
    }
    stack.push(name);
    for d in deps.get(name).into_iter().flatten() {
        if deps.contains_key(d) {
            visit(d, deps, done, stack, order)?;
        }
    }
    stack.pop();
    done.insert(name);
    order.push(name.to_string());
    Ok(())
}

/// The given units plus everything that depends on them, transitively.
pub fn dependents_closure(units: &[Unit], roots: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = roots.clone();
    loop {
        let before = out.len();
        for u in units {
            if u.depends_on.iter().any(|d| out.contains(&d.unit)) {
                out.insert(u.name.clone());
            }
        }
        if out.len() == before {
            return out;
        }
    }
}
