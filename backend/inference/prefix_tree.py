"""A character radix tree of request texts, each node tagged with the workers (tenants) that were sent
it and when: sglang-router's approximation of what each worker's cache holds (SGLANG.md)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix, by binary search over slice comparisons (C speed)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass(eq=False)
class _Node:
    text: str
    parent: _Node | None
    children: dict[str, _Node] = field(default_factory=dict)
    # tenant -> time of its last request through this node
    tenants: dict[str, float] = field(default_factory=dict)


class PrefixTree:
    def __init__(self) -> None:
        self.root = _Node(text="", parent=None)
        # Characters each tenant is tagged on (what --max-tree-size bounds).
        self.tenant_chars: dict[str, int] = {}

    def _tag(self, node: _Node, tenant: str, now: float) -> None:
        if tenant not in node.tenants:
            self.tenant_chars[tenant] = self.tenant_chars.get(tenant, 0) + len(node.text)
        node.tenants[tenant] = now

    def insert(self, text: str, tenant: str, now: float) -> None:
        self.tenant_chars.setdefault(tenant, 0)
        node, position = self.root, 0
        node.tenants[tenant] = now
        while position < len(text):
            child = node.children.get(text[position])
            if child is None:
                leaf = _Node(text=text[position:], parent=node)
                node.children[text[position]] = leaf
                self._tag(leaf, tenant, now)
                return
            shared = common_prefix_length(child.text, text[position:])
            if shared < len(child.text):
                # Split the child: its first `shared` characters become a node of their own, carrying
                # the child's tenants (their character counts do not change: the text is the same).
                head = _Node(text=child.text[:shared], parent=node, tenants=dict(child.tenants))
                child.text = child.text[shared:]
                child.parent = head
                head.children[child.text[0]] = child
                node.children[text[position]] = head
                child = head
            self._tag(child, tenant, now)
            node, position = child, position + shared

    def match(self, text: str) -> tuple[int, str | None]:
        """Characters of ``text`` matched from the start, and the tenant that most recently sent the
        deepest matched node (None when nothing matches)."""
        node, position, tenant = self.root, 0, None
        while position < len(text):
            child = node.children.get(text[position])
            if child is None:
                break
            shared = common_prefix_length(child.text, text[position:])
            if child.tenants:
                tenant = max(child.tenants, key=child.tenants.__getitem__)
            position += shared
            if shared < len(child.text):
                break
            node = child
        return position, tenant

    def evict(self, tenant: str, max_chars: int) -> None:
        """Drop the tenant's least recently used leaves until it is tagged on at most ``max_chars``."""
        if self.tenant_chars.get(tenant, 0) <= max_chars:
            return
        heap = [
            (node.tenants[tenant], id(node), node)
            for node in self._nodes()
            if tenant in node.tenants and node is not self.root and self._is_leaf_of(node, tenant)
        ]
        heapq.heapify(heap)
        while heap and self.tenant_chars[tenant] > max_chars:
            _, _, node = heapq.heappop(heap)
            del node.tenants[tenant]
            self.tenant_chars[tenant] -= len(node.text)
            parent = node.parent
            if not node.tenants and not node.children and parent is not None:
                del parent.children[node.text[0]]
            if (
                parent is not None
                and parent is not self.root
                and tenant in parent.tenants
                and self._is_leaf_of(parent, tenant)
            ):
                heapq.heappush(heap, (parent.tenants[tenant], id(parent), parent))

    def remove_tenant(self, tenant: str) -> None:
        self.evict(tenant, 0)
        self.root.tenants.pop(tenant, None)
        self.tenant_chars.pop(tenant, None)

    @staticmethod
    def _is_leaf_of(node: _Node, tenant: str) -> bool:
        return not any(tenant in child.tenants for child in node.children.values())

    def _nodes(self) -> list[_Node]:
        found, stack = [], [self.root]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(node.children.values())
        return found
