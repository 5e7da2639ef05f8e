"""RadixAttention's prefix cache over token ids: page-aligned matching, lock refs, LRU/LFU eviction."""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence
from typing import Literal, NamedTuple

EvictionPolicy = Literal["lru", "lfu"]


class TreeNode:
    """One edge of the radix tree: the token run `key` leading from `parent` to this node."""

    __slots__ = ("children", "hit_count", "key", "last_access", "lock_ref", "parent")

    def __init__(self, key: list[int], parent: TreeNode | None) -> None:
        self.key = key
        self.parent = parent
        self.children: dict[Hashable, TreeNode] = {}
        self.lock_ref = 0
        self.last_access = 0
        self.hit_count = 0

    def __lt__(self, other: TreeNode) -> bool:  # heap order for ties
        return self.last_access < other.last_access


class MatchResult(NamedTuple):
    """How many leading tokens of a key the tree holds, and the node where that prefix ends."""

    length: int
    node: TreeNode


class RadixCache:
    """The tree of cached token sequences, as SGLang's `RadixCache` keeps it.

    Sizes are in tokens. A node with `lock_ref > 0` is protected: a running request depends on it. The
    rest is evictable, leaves first, least recently used first (or least frequently used with "lfu").
    Keys are cut to whole pages when `page_size > 1`, and children are indexed by their first page.
    """

    def __init__(self, page_size: int = 1, eviction_policy: EvictionPolicy = "lru") -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.page_size = page_size
        self.eviction_policy: EvictionPolicy = eviction_policy
        self._tick = 0
        self.reset()

    def reset(self) -> None:
        """Drop everything (SGLang's flush_cache); callers must hold no locks."""
        self.root = TreeNode([], None)
        self.root.lock_ref = 1  # the root is never evicted
        self.evictable_size = 0
        self.protected_size = 0

    @property
    def total_size(self) -> int:
        """Tokens held by the tree, locked or not."""
        return self.evictable_size + self.protected_size

    def _now(self) -> int:
        # A logical clock: deterministic, and strictly ordered even within one scheduler step.
        self._tick += 1
        return self._tick

    def _child_key(self, key: Sequence[int], pos: int) -> Hashable:
        if self.page_size == 1:
            return key[pos]
        return tuple(key[pos : pos + self.page_size])

    def _common_len(self, edge: list[int], key: Sequence[int], pos: int) -> int:
        """Length of the common prefix of `edge` and `key[pos:]`, in whole pages."""
        n = min(len(edge), len(key) - pos)
        if edge[:n] == key[pos : pos + n]:
            common = n
        else:  # binary search on slice equality: each comparison runs in C
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if edge[:mid] == key[pos : pos + mid]:
                    lo = mid
                else:
                    hi = mid - 1
            common = lo
        return common - common % self.page_size

    def page_aligned(self, n: int) -> int:
        """`n` rounded down to whole pages."""
        return n - n % self.page_size

    def match_prefix(self, key: Sequence[int]) -> MatchResult:
        """The longest cached prefix of `key` (page-aligned); marks the path as used.

        A partial match inside an edge splits it, so the returned node ends exactly at the prefix and can
        be locked on its own, as SGLang does.
        """
        key = key[: self.page_aligned(len(key))]
        now = self._now()
        node, pos = self.root, 0
        node.last_access = now
        while pos < len(key):
            child = node.children.get(self._child_key(key, pos))
            if child is None:
                break
            common = self._common_len(child.key, key, pos)
            if common == 0:
                break
            if common < len(child.key):
                child = self._split(child, common)
            child.last_access = now
            child.hit_count += 1
            node, pos = child, pos + common
        return MatchResult(pos, node)

    def peek_prefix_len(self, key: Sequence[int]) -> int:
        """Length of the cached prefix of `key`, without splitting or touching anything (for lpm order)."""
        key = key[: self.page_aligned(len(key))]
        node, pos = self.root, 0
        while pos < len(key):
            child = node.children.get(self._child_key(key, pos))
            if child is None:
                break
            common = self._common_len(child.key, key, pos)
            pos += common
            if common < len(child.key):
                break
            node = child
        return pos

    def _split(self, child: TreeNode, at: int) -> TreeNode:
        parent = child.parent
        assert parent is not None
        mid = TreeNode(child.key[:at], parent)
        mid.lock_ref = child.lock_ref  # sizes stay in the same bucket: mid inherits the lock state
        mid.last_access = child.last_access
        mid.hit_count = child.hit_count
        parent.children[self._child_key(child.key, 0)] = mid
        child.key = child.key[at:]
        child.parent = mid
        mid.children[self._child_key(child.key, 0)] = child
        return mid

    def insert(self, key: Sequence[int]) -> MatchResult:
        """Add `key` (cut to whole pages); returns how much of it was already cached and its last node."""
        key = list(key[: self.page_aligned(len(key))])
        now = self._now()
        node, pos = self.root, 0
        node.last_access = now
        while pos < len(key):
            child = node.children.get(self._child_key(key, pos))
            if child is None:
                leaf = TreeNode(key[pos:], node)
                leaf.last_access = now
                node.children[self._child_key(key, pos)] = leaf
                self.evictable_size += len(leaf.key)
                return MatchResult(pos, leaf)
            common = self._common_len(child.key, key, pos)
            if common < len(child.key):
                child = self._split(child, common)
            child.last_access = now
            node, pos = child, pos + common
        return MatchResult(pos, node)

    def inc_lock_ref(self, node: TreeNode) -> None:
        """Protect `node` and its ancestors from eviction."""
        n: TreeNode | None = node
        while n is not None and n is not self.root:
            if n.lock_ref == 0:
                self.evictable_size -= len(n.key)
                self.protected_size += len(n.key)
            n.lock_ref += 1
            n = n.parent

    def dec_lock_ref(self, node: TreeNode) -> None:
        """Undo one `inc_lock_ref(node)`."""
        n: TreeNode | None = node
        while n is not None and n is not self.root:
            if n.lock_ref == 1:
                self.evictable_size += len(n.key)
                self.protected_size -= len(n.key)
            n.lock_ref -= 1
            assert n.lock_ref >= 0, "unbalanced dec_lock_ref"
            n = n.parent

    def _order(self, node: TreeNode) -> tuple[int, int]:
        if self.eviction_policy == "lfu":
            return (node.hit_count, node.last_access)
        return (node.last_access, 0)

    def evict(self, num_tokens: int) -> int:
        """Free at least `num_tokens` from unlocked leaves (fewer if not enough); returns tokens freed."""
        if num_tokens <= 0 or self.evictable_size == 0:
            return 0
        heap = [(self._order(leaf), leaf) for leaf in self._unlocked_leaves()]
        heapq.heapify(heap)
        freed = 0
        while freed < num_tokens and heap:
            _, leaf = heapq.heappop(heap)
            parent = leaf.parent
            assert parent is not None
            del parent.children[self._child_key(leaf.key, 0)]
            freed += len(leaf.key)
            self.evictable_size -= len(leaf.key)
            if parent is not self.root and not parent.children and parent.lock_ref == 0:
                heapq.heappush(heap, (self._order(parent), parent))
        return freed

    def _unlocked_leaves(self) -> list[TreeNode]:
        leaves: list[TreeNode] = []
        stack = list(self.root.children.values())
        while stack:
            n = stack.pop()
            if n.children:
                stack.extend(n.children.values())
            elif n.lock_ref == 0:
                leaves.append(n)
        return leaves

    def node_count(self) -> int:
        """Nodes in the tree, root excluded (for stats)."""
        count, stack = 0, list(self.root.children.values())
        while stack:
            n = stack.pop()
            count += 1
            stack.extend(n.children.values())
        return count
