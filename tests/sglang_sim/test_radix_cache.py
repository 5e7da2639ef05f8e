"""The radix cache: matching, splitting, pages, lock refs and LRU/LFU eviction of unlocked leaves."""

from __future__ import annotations

from loadtests.sglang_sim.radix_cache import RadixCache


def test_empty_cache_matches_nothing():
    cache = RadixCache()
    assert cache.match_prefix([1, 2, 3]).length == 0


def test_insert_then_match_full_and_partial_prefixes():
    cache = RadixCache()
    assert cache.insert([1, 2, 3, 4]).length == 0
    assert cache.match_prefix([1, 2, 3, 4, 5]).length == 4
    assert cache.match_prefix([1, 2, 9]).length == 2
    assert cache.total_size == 4


def test_inserting_a_shared_prefix_splits_and_stores_only_new_tokens():
    cache = RadixCache()
    cache.insert([1, 2, 3, 4])
    assert cache.insert([1, 2, 5, 6]).length == 2
    assert cache.total_size == 6
    assert cache.node_count() == 3
    assert cache.match_prefix([1, 2, 5, 6]).length == 4


def test_page_size_aligns_matches_and_inserts_to_whole_pages():
    cache = RadixCache(page_size=4)
    cache.insert(list(range(10)))  # 8 tokens kept: two pages
    assert cache.total_size == 8
    assert cache.match_prefix(list(range(10))).length == 8
    assert cache.match_prefix([0, 1, 2, 3, 4, 5, 99, 7]).length == 4  # mismatch inside page 2
    assert cache.match_prefix([0, 1, 2]).length == 0


def test_locked_nodes_are_protected_from_eviction():
    cache = RadixCache()
    cache.insert([1, 2, 3])
    node = cache.match_prefix([1, 2, 3]).node
    cache.inc_lock_ref(node)
    assert (cache.protected_size, cache.evictable_size) == (3, 0)
    assert cache.evict(10) == 0
    cache.dec_lock_ref(node)
    assert (cache.protected_size, cache.evictable_size) == (0, 3)
    assert cache.evict(10) == 3
    assert cache.total_size == 0


def test_lock_on_an_inner_node_protects_its_ancestors_only():
    cache = RadixCache()
    cache.insert([1, 2, 3, 4])
    cache.insert([1, 2, 7, 8])
    node = cache.match_prefix([1, 2, 3, 4]).node
    cache.inc_lock_ref(node)
    assert cache.evict(100) == 2  # only [7, 8] can go
    assert cache.match_prefix([1, 2, 3, 4]).length == 4


def test_lru_evicts_least_recently_used_leaf_first():
    cache = RadixCache()
    cache.insert([1, 1, 1])
    cache.insert([2, 2, 2])
    cache.insert([3, 3, 3])
    cache.match_prefix([1, 1, 1])  # touch the oldest
    cache.evict(3)
    assert cache.match_prefix([2, 2, 2]).length == 0
    assert cache.match_prefix([1, 1, 1]).length == 3
    assert cache.match_prefix([3, 3, 3]).length == 3


def test_lfu_evicts_least_frequently_hit_leaf_first():
    cache = RadixCache(eviction_policy="lfu")
    cache.insert([1, 1])
    cache.insert([2, 2])
    for _ in range(3):
        cache.match_prefix([1, 1])
    cache.match_prefix([2, 2])
    cache.evict(2)
    assert cache.match_prefix([1, 1]).length == 2
    assert cache.match_prefix([2, 2]).length == 0


def test_eviction_climbs_to_parents_that_become_leaves():
    cache = RadixCache()
    cache.insert([1, 2, 3, 4])
    cache.insert([1, 2, 5, 6])
    assert cache.evict(6) == 6
    assert cache.total_size == 0
    assert cache.node_count() == 0


def test_reset_empties_the_tree():
    cache = RadixCache()
    cache.insert([1, 2, 3])
    cache.reset()
    assert cache.total_size == 0
    assert cache.match_prefix([1, 2, 3]).length == 0
