//! Memory planning: intermediate entries whose lifetimes do not overlap
//! share one storage block, so a forward pass reuses a fixed set of buffers.

/// Where each operator output lives, and when its storage becomes free.
pub(super) struct MemoryPlan {
    /// Storage block of each entry; `None` for entries the plan does not manage.
    pub storage_of: Vec<Option<usize>>,
    /// Size in bytes of each storage block.
    pub block_bytes: Vec<usize>,
    /// For each step, the entries whose storage returns to the pool after it.
    pub release_after: Vec<Vec<usize>>,
}

/// One step of the plan: the entries it reads and the entries it writes.
pub(super) struct StepIo<'a> {
    pub inputs: &'a [usize],
    pub outputs: &'a [usize],
}

/// Plans storage for every output of `steps` except the `persistent`
/// entries (graph outputs), which keep storage of their own. `bytes[e]` is
/// the size of entry `e`. Blocks are chosen best-fit from the free pool.
pub(super) fn plan(steps: &[StepIo], bytes: &[usize], persistent: &[bool]) -> MemoryPlan {
    let entries = bytes.len();
    let mut last_use: Vec<Option<usize>> = vec![None; entries];
    for (s, step) in steps.iter().enumerate() {
        for &e in step.outputs {
            last_use[e] = Some(s);
        }
        for &e in step.inputs {
            last_use[e] = Some(s);
        }
    }

    let mut storage_of = vec![None; entries];
    let mut block_bytes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut release_after = vec![Vec::new(); steps.len()];
    for (s, step) in steps.iter().enumerate() {
        for &e in step.outputs {
            if persistent[e] || storage_of[e].is_some() {
                continue;
            }
            let need = bytes[e];
            let fit = free
                .iter()
                .enumerate()
                .filter(|(_, &b)| block_bytes[b] >= need)
                .min_by_key(|(_, &b)| block_bytes[b])
                .map(|(i, _)| i);
            let block = match fit {
                Some(i) => free.swap_remove(i),
                None => {
                    block_bytes.push(need);
                    block_bytes.len() - 1
                }
            };
            storage_of[e] = Some(block);
        }
        let mut released: Vec<usize> = step
            .inputs
            .iter()
            .chain(step.outputs)
            .copied()
            .filter(|&e| storage_of[e].is_some() && last_use[e] == Some(s))
            .collect();
        released.sort_unstable();
        released.dedup();
        for &e in &released {
            free.push(storage_of[e].expect("filtered on is_some"));
        }
        release_after[s] = released;
    }
    MemoryPlan {
        storage_of,
        block_bytes,
        release_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_reuses_two_blocks() {
        // e0 (input) -> s0 -> e1 -> s1 -> e2 -> s2 -> e3 -> s3 -> e4 (output)
        let io: Vec<(Vec<usize>, Vec<usize>)> = (0..4).map(|i| (vec![i], vec![i + 1])).collect();
        let steps: Vec<StepIo> = io
            .iter()
            .map(|(i, o)| StepIo {
                inputs: i,
                outputs: o,
            })
            .collect();
        let persistent = [true, false, false, false, true];
        let p = plan(&steps, &[64; 5], &persistent);
        assert_eq!(p.block_bytes.len(), 2);
        assert_ne!(p.storage_of[1], p.storage_of[2]);
        assert_eq!(p.storage_of[1], p.storage_of[3]);
        assert_eq!(p.storage_of[4], None);
    }

    #[test]
    fn live_entries_never_share() {
        // s0 makes e1 and e2; s1 reads both and makes e3.
        let steps = [
            StepIo {
                inputs: &[0],
                outputs: &[1, 2],
            },
            StepIo {
                inputs: &[1, 2],
                outputs: &[3],
            },
        ];
        let p = plan(&steps, &[16, 16, 32, 8], &[true, false, false, false]);
        assert_ne!(p.storage_of[1], p.storage_of[2]);
        assert_ne!(p.storage_of[3], p.storage_of[1]);
        assert_ne!(p.storage_of[3], p.storage_of[2]);
    }
}
