//! A queue that is fair between its keys: each key (an account) has its
//! own first-in-first-out line, and the lines take turns. One account that
//! queues a thousand jobs then delays another account's job by one job per
//! line ahead of it, not by a thousand.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Items by key, served one key at a time in turn.
#[derive(Debug)]
pub(crate) struct FairQueue<K, T> {
    lines: HashMap<K, VecDeque<T>>,
    /// Keys with items waiting, in the order of their turns.
    turns: VecDeque<K>,
    len: usize,
}

impl<K, T> Default for FairQueue<K, T> {
    fn default() -> FairQueue<K, T> {
        FairQueue {
            lines: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, T> FairQueue<K, T> {
    /// Queues `item` at the end of its key's line; a key whose line was
    /// empty takes the last turn.
    pub(crate) fn push(&mut self, key: K, item: T) {
        let line = self.lines.entry(key.clone()).or_default();
        if line.is_empty() {
            self.turns.push_back(key);
        }
        line.push_back(item);
        self.len += 1;
    }

    /// The first item of the key whose turn it is; that key, if it has
    /// more, goes to the back of the turns.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let key = self.turns.pop_front()?;
        let line = self.lines.get_mut(&key)?;
        let item = line.pop_front();
        match line.is_empty() {
            true => drop(self.lines.remove(&key)),
            false => self.turns.push_back(key),
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// Takes back the item just pushed for `key` (one that cannot run).
    pub(crate) fn unpush(&mut self, key: &K) -> Option<T> {
        let line = self.lines.get_mut(key)?;
        let item = line.pop_back();
        if line.is_empty() {
            self.lines.remove(key);
            self.turns.retain(|k| k != key);
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// Items waiting, over all keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_take_turns_and_each_keeps_its_order() {
        let mut q = FairQueue::default();
        for i in 0..4 {
            q.push("mallory", format!("m{i}"));
        }
        q.push("alice", "a0".to_string());
        q.push("alice", "a1".to_string());
        assert_eq!(q.len(), 6);
        let order: Vec<String> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["m0", "a0", "m1", "a1", "m2", "m3"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_late_key_waits_one_turn_not_the_whole_queue() {
        let mut q = FairQueue::default();
        for i in 0..1000 {
            q.push(1, i);
        }
        assert_eq!(q.pop(), Some(0));
        q.push(2, -1);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(
            q.pop(),
            Some(-1),
            "one job of the busy key, then the other's"
        );
    }

    #[test]
    fn unpush_takes_back_the_last_item_of_a_key() {
        let mut q = FairQueue::default();
        q.push(1, 'a');
        q.push(2, 'b');
        assert_eq!(q.unpush(&2), Some('b'));
        assert_eq!(q.unpush(&2), None);
        assert_eq!(q.len(), 1);
        assert_eq!((q.pop(), q.pop()), (Some('a'), None));
        assert!(q.is_empty());
    }
}
