"""The web page as a screen reader and a keyboard meet it, read from real HTTP answers with
``html.parser``: a title and one h1 per page, headings in order, every image, control and
landmark named, and no state told by colour alone."""

from __future__ import annotations

import itertools
from html.parser import HTMLParser

from test_daemon_support import no_leaked_threads  # noqa: F401
from web_support import Client, ids, serving

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find(self, tag: str) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag]

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


class Tree(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.root = self.open = Node("#document", {}, None)
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.open)
        self.open.children.append(node)
        if tag not in VOID:
            self.open = node

    def handle_endtag(self, tag):
        for node in [self.open, *self.open.ancestors()]:
            if node.tag == tag:
                self.open = node.parent
                return

    def handle_data(self, data):
        self.open.children.append(data)


def page(web: Client, path: str, status: int = 200) -> Node:
    code, _, body = web.get(path, accept="text/html")
    assert code == status, (path, code)
    return Tree(body.decode()).root


def name(node: Node, doc: Node) -> str:
    """The accessible name, as far as these pages need: aria-label, a wrapping or pointing
    label, the text inside, an image's alt."""
    if node.attrs.get("aria-label"):
        return node.attrs["aria-label"]
    if node.tag == "img":
        return node.attrs.get("alt") or ""
    labels = [a for a in node.ancestors() if a.tag == "label"]
    ident = node.attrs.get("id")
    labels += [n for n in doc.find("label") if ident and n.attrs.get("for") == ident]
    if labels:
        return labels[0].text()
    if node.tag in ("input", "progress", "select", "textarea"):
        return ""
    return node.text()


def outline(doc: Node) -> list[tuple[int, str]]:
    return [(int(n.tag[1]), n.text()) for n in doc.walk() if n.tag in ("h1", "h2", "h3", "h4")]


def pages_of(world) -> dict[str, Node]:
    pid = ids(world)
    with serving(world) as server:
        web = Client(server.url)
        return {
            "dashboard": page(web, "/"),
            "photos": page(web, "/photos"),
            "held": page(web, f"/photos/{pid['held.jpg']}"),
            "failed": page(web, f"/photos/{pid['bad.jpg']}"),
            "shipped": page(web, f"/photos/{pid['noise.jpg']}"),
            "missing": page(web, "/photos/999999", 404),
            "bad filter": page(web, "/photos?verdict=nope", 400),
        }


def test_every_page_has_a_title_one_h1_and_headings_in_order(world):
    docs = pages_of(world)
    for which, doc in docs.items():
        assert doc.find("html")[0].attrs.get("lang") == "en", which
        title = doc.find("title")[0].text()
        assert title.startswith("pixcamd — "), (which, title)
        heads = outline(doc)
        assert [h for h, _ in heads].count(1) == 1 and heads[0][0] == 1, (which, heads)
        for (before, _), (after, text) in itertools.pairwise(heads):
            assert after <= before + 1, (which, text, heads)
    assert docs["missing"].find("title")[0].text() == "pixcamd — not found"
    assert "No such photo" in docs["missing"].find("main")[0].text()
    assert docs["bad filter"].find("title")[0].text() == "pixcamd — bad request"


def test_each_navigation_is_named(world):
    for which, doc in pages_of(world).items():
        navs = [n.attrs.get("aria-label") for n in doc.find("nav")]
        assert all(navs) and len(set(navs)) == len(navs), (which, navs)
