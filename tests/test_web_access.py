"""The web page as a screen reader and a keyboard meet it, read from real HTTP answers with
``html.parser``: a title and one h1 per page, headings in order, every image, control and
landmark named, and no state told by colour alone."""

from __future__ import annotations

import itertools
import time
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


def test_every_picture_says_which_photo_and_which_picture_it_is(world):
    docs = pages_of(world)
    alts = {which: [i.attrs.get("alt") for i in docs[which].find("img")] for which in docs}
    # the held-back photo's kept copy is NOT protected: neither its words nor its caption say so
    assert alts["held"] == [
        "held.jpg, original",
        "held.jpg, copy, NOT protected (held back)",
        "held.jpg, original at 100 %",
        "held.jpg, copy, NOT protected at 100 %",
        "held.jpg, difference between the original and the copy, NOT protected, amplified 16 times",
    ]
    captions = [c.text() for c in docs["held"].find("figcaption")]
    assert captions == ["Original", "Copy, NOT protected (held back)"]
    assert alts["shipped"][:2] == ["noise.jpg, original", "noise.jpg, protected copy"]
    assert alts["failed"][0].startswith("bad.jpg, original: it cannot be shown")
    # a thumbnail's link is named by the photo's name beside it
    links = [a for a in docs["photos"].find("a") if a.find("img")]
    assert sorted(name(a, docs["photos"]) for a in links) == ["bad.jpg", "held.jpg", "noise.jpg"]


def test_every_control_and_region_to_tab_to_has_a_name(world):
    for which, doc in pages_of(world).items():
        for node in doc.walk():
            control = node.tag in ("button", "input", "progress", "select", "textarea", "a")
            if node.attrs.get("type") == "hidden" or not (control or "tabindex" in node.attrs):
                continue
            assert name(node, doc), (which, node.tag, node.attrs)
            if node.tag not in ("button", "input", "a"):  # a region: a landmark's role too
                assert node.attrs.get("role") or node.tag == "progress", (which, node.attrs)
    zoom = [n for n in pages_of(world)["held"].walk() if n.attrs.get("class") == "viewport"]
    assert [n.attrs.get("tabindex") for n in zoom] == ["0", "0"]  # the arrow keys pan them


def test_a_judgement_or_a_warning_is_said_in_words_not_in_colour_alone(world):
    from pixcamd.daemon.ledger import Ledger

    ledger = Ledger(world.ledger_path)
    ledger.add_event(time.time() + 1, "warning", "web", None, {"message": "no web page"})
    ledger.close()
    docs = pages_of(world)
    judged = [td for td in docs["held"].find("td") if td.attrs.get("class") in ("low", "good")]
    assert judged  # the held photo is judged good quality, before and after
    for td in judged:
        assert td.text().split()[-1] == td.attrs["class"], td.text()
    lines = [(li.attrs["class"], li.text()) for li in docs["dashboard"].find("li")]
    assert any(k == "level-warning" and "WARNING web" in t and "no web page" in t for k, t in lines)
    assert all(("INFO" in t) is False for k, t in lines if k == "level-info")


def test_without_javascript_no_page_claims_what_only_its_script_does(world):
    docs = pages_of(world)
    dashboard = docs["dashboard"].find("main")[0].text()
    assert "Updates by itself" not in dashboard and "Reload the page" in dashboard
    zoom = docs["held"].find("main")[0].text()
    assert "Scroll either side, or Tab to it and use the arrow keys." in zoom
    assert "move together" not in zoom and "Click a photo" not in zoom
