"""The character radix tree behind the cache_aware policy."""

from __future__ import annotations

from backend.inference.prefix_tree import PrefixTree, common_prefix_length


def test_common_prefix_length():
    assert common_prefix_length("hello world", "hello there") == 6
    assert common_prefix_length("", "x") == 0
    assert common_prefix_length("same", "same") == 4


def test_match_finds_the_longest_prefix_and_its_most_recent_tenant():
    tree = PrefixTree()
    tree.insert("system prompt. user asks about tides", "a", now=1)
    tree.insert("system prompt. user asks about cats", "b", now=2)
    assert tree.match("system prompt. user asks about tides and moons") == (
        len("system prompt. user asks about tides"),
        "a",
    )
    matched, tenant = tree.match("system prompt. user asks about c")
    assert matched == len("system prompt. user asks about c") and tenant == "b"
    # On the shared part both sent it; the later one wins.
    assert tree.match("system prompt. user") == (len("system prompt. user"), "b")
    assert tree.match("nothing in common") == (0, None)


def test_tenant_sizes_count_characters_once():
    tree = PrefixTree()
    tree.insert("abcdef", "a", now=1)
    tree.insert("abcxyz", "a", now=2)  # splits "abcdef" at "abc"
    assert tree.tenant_chars["a"] == len("abcdef") + len("xyz")


def test_eviction_drops_the_least_recently_used_leaves_first():
    tree = PrefixTree()
    tree.insert("shared-old", "a", now=1)
    tree.insert("shared-new", "a", now=5)
    tree.evict("a", max_chars=len("shared-new"))
    assert tree.match("shared-old")[0] == len("shared-")  # the old branch is gone
    assert tree.match("shared-new") == (len("shared-new"), "a")


def test_removing_a_tenant_forgets_its_prefixes():
    tree = PrefixTree()
    tree.insert("prompt", "a", now=1)
    tree.insert("prompt", "b", now=2)
    tree.remove_tenant("b")
    assert tree.match("prompt") == (len("prompt"), "a")
