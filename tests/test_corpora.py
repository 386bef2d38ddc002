"""The Debian corpora: parsers on small fixtures written here, then a small real build.

The fixture tests run anywhere. The real build needs the Debian packages that scripts/setup.sh
installs and is skipped, saying so, where they are missing.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tunesift.corpora import (
    bible,
    build,
    debian_packages,
    devil,
    dictd,
    foldoc,
    fortunes,
    gcide,
    jargon,
    perlfaq,
    text,
    wordnet,
)
from tunesift.errors import TunesiftError

# --- dictd ---------------------------------------------------------------------------------


def test_dictd_base64_numbers_are_positional_most_significant_first():
    assert dictd.B64_ALPHABET == (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    )
    assert dictd.b64_number("A") == 0
    assert dictd.b64_number("Z") == 25
    assert dictd.b64_number("a") == 26
    assert dictd.b64_number("0") == 52
    assert dictd.b64_number("+") == 62
    assert dictd.b64_number("/") == 63
    assert dictd.b64_number("BA") == 64
    assert dictd.b64_number("BQ+") == 1 * 64**2 + 16 * 64 + 62
    assert dictd.b64_number("5I") == 57 * 64 + 8  # gcide.index: "0 TAB 5I TAB Fz"
    with pytest.raises(ValueError):
        dictd.b64_number("A=")


def _write_dictd(directory: Path, name: str, entries: list[tuple[list[str], str]]) -> None:
    """A dictd database: entries (their headwords, text), the index sorted like dictfmt's."""
    data = b""
    index = ["00-database-info\tA\tB", "00databaseurl\tA\tB"]
    for words, body in entries:
        raw = body.encode("utf-8")
        start, data = len(data), data + raw + b"\n"
        for w in words:
            index.append(f"{w}\t{_b64(start)}\t{_b64(len(raw))}")
    (directory / f"{name}.dict.dz").write_bytes(gzip.compress(data))
    (directory / f"{name}.index").write_text("\n".join(index) + "\n", encoding="utf-8")


def _b64(n: int) -> str:
    digits = ""
    while True:
        digits = dictd.B64_ALPHABET[n % 64] + digits
        n //= 64
        if not n:
            return digits


def test_dictd_reader_skips_metadata_and_yields_shared_entries_once(tmp_path):
    _write_dictd(
        tmp_path,
        "toy",
        [(["eightvo", "8deg"], "eightvo \\eightvo\\ n.\n   a book size"), (["ab"], "ab\n   x")],
    )
    index = dictd.parse_index((tmp_path / "toy.index").read_text())
    assert [i.headword for i in index] == ["eightvo", "8deg", "ab"]
    entries = list(dictd.iter_entries("toy", tmp_path))
    assert [e.headword for e in entries] == ["eightvo", "ab"]
    assert entries[0].text.startswith("eightvo \\eightvo\\ n.")
    assert dictd.available("toy", tmp_path) and not dictd.available("nope", tmp_path)


def test_dictd_decodes_stray_cp1252_bytes():
    assert dictd.decode("don\x92t".encode("latin-1")) == "don’t"


def test_id_maker_counts_entries_per_headword():
    make = dictd.IdMaker("gcide")
    assert [make("Diluent"), make("diluent"), make("Water newt"), make("a:b")] == [
        "gcide:diluent:1",
        "gcide:diluent:2",
        "gcide:water_newt:1",
        "gcide:a_b:1",
    ]


# --- text clean-up ---------------------------------------------------------------------------


def test_clean_collapses_whitespace_drops_control_characters_and_caps_length():
    assert text.clean("  a\tb\n\n c\x07d  ") == "a b c d"
    capped = text.clean("word " * 2000, max_chars=22)
    assert capped == "word word word word"


def test_overstrike_and_mojibake_repairs():
    assert text.unoverstrike("I *____\b\b\b\bknew* it") == "I *knew* it"
    assert text.unoverstrike("_\bn+1") == "n+1"
    assert text.fix_mojibake("don\u00e2\x80\x99t") == "don’t"
    assert text.fix_mojibake("Here\u00c3\u00a2\u00c2\x80\u00c2\x99s") == "Here’s"  # twice
    assert text.fix_mojibake("café") == "café"


# --- fortunes ------------------------------------------------------------------------------

FORTUNE_FILE = """\
A day for firm decisions!!!!!  Or is it?
%
He hated being thought of as one of those people that wore stupid
ornamental armour. It was gilt by association.
		-- Terry Pratchett, "Night Watch"
%
%
Calm down, it's *____\b\b\b\bonly* ones and zeroes.
%
"""


def test_split_fortunes_on_percent_lines_keeps_positions():
    items = fortunes.split_fortunes(FORTUNE_FILE)
    assert len(items) == 4  # the empty third item keeps its place, so ids stay stable
    assert items[2] == ""
    assert fortunes.clean_fortune(items[1]).endswith(
        'gilt by association. -- Terry Pratchett, "Night Watch"'
    )
    assert fortunes.clean_fortune(items[3]) == "Calm down, it's *only* ones and zeroes."


def test_iter_fortunes_skips_dat_u8_and_ascii_art(tmp_path):
    (tmp_path / "science").write_text(FORTUNE_FILE)
    (tmp_path / "science.dat").write_bytes(b"\x00\x00\x00\x02")
    (tmp_path / "science.u8").symlink_to("science")
    (tmp_path / "ascii-art").write_text("  /\\_/\\\n ( o.o )\n%\n")
    records = list(fortunes.iter_fortunes(tmp_path))
    assert [r["id"] for r in records] == [
        "fortunes:science:0",
        "fortunes:science:1",
        "fortunes:science:3",
    ]
    assert {r["label"] for r in records} == {"science"}
    assert {r["source"] for r in records} == {"fortunes"}


# --- WordNet -------------------------------------------------------------------------------

WN_NOUN = (
    "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 02083346 n 0000 | a member "
    'of the genus Canis; "the dog barked all night"  \n'
)
WN_ADJ = (
    "00001740 00 a 01 able 0 001 ! 00002098 a 0101 | (usually followed by `to') having the "
    "necessary means or skill  \n"
)
WN_PPL = "01234567 44 s 02 broken(a) 0 busted 1 000 | physically damaged  \n"
WN_HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n"


def test_wordnet_lexnames_are_the_standard_45():
    assert len(wordnet.LEXNAMES) == 45
    assert wordnet.LEXNAMES[0] == "adj.all"
    assert wordnet.LEXNAMES[3] == "noun.Tops"
    assert wordnet.LEXNAMES[5] == "noun.animal"
    assert wordnet.LEXNAMES[20] == "noun.plant"
    assert wordnet.LEXNAMES[29] == "verb.body"
    assert wordnet.LEXNAMES[44] == "adj.ppl"


def test_wordnet_line_parsing():
    dog = wordnet.parse_line(WN_NOUN)
    assert dog is not None
    assert dog.offset == "02084071" and dog.lexname == "noun.animal"
    assert dog.words == ["dog", "domestic dog", "Canis familiaris"]
    assert wordnet.synset_text(dog) == (
        'dog, domestic dog, Canis familiaris: a member of the genus Canis; "the dog barked all night"'
    )
    able = wordnet.parse_line(WN_ADJ)
    assert able is not None and able.lexname == "adj.all" and able.words == ["able"]
    ppl = wordnet.parse_line(WN_PPL)
    assert ppl is not None and ppl.lexname == "adj.ppl" and ppl.words == ["broken", "busted"]
    assert wordnet.parse_line(WN_HEADER) is None


def test_iter_wordnet_ids_and_labels(tmp_path):
    for part, line in (("noun", WN_NOUN), ("verb", ""), ("adj", WN_HEADER + WN_ADJ), ("adv", "")):
        (tmp_path / f"data.{part}").write_text(line)
    records = list(wordnet.iter_wordnet(tmp_path))
    assert [(r["id"], r["label"]) for r in records] == [
        ("wordnet:noun:02084071", "noun.animal"),
        ("wordnet:adj:00001740", "adj.all"),
    ]


# --- GCIDE ---------------------------------------------------------------------------------

GCIDE_ADDER = """\
Adder \\Add"er\\, n. [OE. naddre.]
   1. One who adds.
      [1913 Webster]

   2. (Zool.) A small venomous serpent of the genus {Vipera}.
      [1913 Webster]
"""
GCIDE_GROUND = "\n".join(
    [r"Ground \Ground\, n."] + [f"   {i}. sense {i}." for i in range(1, 9)] + ["   9. (Zool.) x."]
)
GCIDE_BOWHEAD = """\
Bowhead \\Bow"head`\\, n. (Zool.)
   The great Arctic or Greenland whale. ({Bal[ae]na
   mysticetus}). See {Baleen}.
   [1913 Webster]
"""


def test_gcide_domain_tags_are_normalised_and_whitelisted():
    assert gcide.domain_tags("(Zool.) a (Zoöl.) b (Zool) c (Law.) d") == [
        "Zool.",
        "Zool.",
        "Zool.",
        "Law",
    ]
    assert gcide.domain_tags("(Bot. & Zool.) x (Fig.) y (Eng. Law) z (Obs.)") == ["Bot.", "Zool."]
    assert gcide.domain_tags("(Med., Chem.) x (Music)") == ["Med.", "Chem.", "Mus."]


def test_gcide_domain_label_most_frequent_tag_covering_half_the_senses():
    assert gcide.domain_label(GCIDE_ADDER) == "Zool."  # one tagged sense of two
    assert gcide.domain_label(GCIDE_GROUND) == ""  # one tagged sense of nine
    assert gcide.domain_label("X, n. (Bot.) a. (Zool.) b. (Zool.) c.") == "Zool."
    assert gcide.domain_label("X, n. (Bot.) a. (Zool.) b.") == "Bot."  # tie: the first
    assert gcide.domain_label("X, n. A thing. [Obs.]") == ""
    assert gcide.sense_count(GCIDE_ADDER) == 2


def test_gcide_clean_entry_drops_markup_and_decodes_accents():
    assert gcide.clean_entry(GCIDE_ADDER) == (
        "Adder, n. [OE. naddre.] 1. One who adds. "
        "2. (Zool.) A small venomous serpent of the genus Vipera."
    )
    assert gcide.clean_entry(GCIDE_BOWHEAD) == (
        "Bowhead, n. (Zool.) The great Arctic or Greenland whale. (Balæna mysticetus). See Baleen."
    )
    assert gcide.clean_entry(
        "Aam  ([add]m or [aum]m), n. fr. [=a]ma, 8[deg].\n[WordNet 1.5 +PJC]"
    ) == ("Aam (am or äm), n. fr. āma, 8°.")
    assert gcide.clean_entry('911  (n[imac]n" [-e]*l[e^]v"[e^]n) n. A day.') == "911 n. A day."
    wrapped = (
        "Young Men's Christian Association \\Young Men's Christian\n   Association\\\n   An org."
    )
    assert gcide.clean_entry(wrapped) == "Young Men's Christian Association An org."
    assert gcide.clean_entry(
        "Zubr, n. [Polish [zdot]ubr.] [alpha] and [Delta]. [WordNet 1.5 + CM]"
    ) == ("Zubr, n. [Polish żubr.] α and Δ.")
    assert gcide.headword(GCIDE_ADDER, "adder") == "Adder"
    assert gcide.headword("no pronunciation here", "fallback") == "fallback"


def test_iter_gcide_on_a_fixture_database(tmp_path):
    _write_dictd(
        tmp_path,
        "gcide",
        [(["adder"], GCIDE_ADDER), (["bowhead"], GCIDE_BOWHEAD), (["ground"], GCIDE_GROUND)],
    )
    records = list(gcide.iter_gcide(tmp_path))
    assert [(r["id"], r["label"]) for r in records] == [
        ("gcide:adder:1", "Zool."),
        ("gcide:bowhead:1", "Zool."),
        ("gcide:ground:1", ""),
    ]


# --- FOLDOC, Jargon File, Devil's Dictionary ------------------------------------------------

FOLDOC_ENTRY = """\
*LISP
StarLISP

   <language, parallel> (StarLISP) A {data-parallel} extension of {Common LISP}.
   Mail <info@tmc.com>.

   (2014-12-17)
"""


def test_foldoc_category_and_text():
    title, body = foldoc.split_entry(FOLDOC_ENTRY)
    assert title == "*LISP"
    assert foldoc.category(body) == "language"
    assert foldoc.category("\n   1. <games> {Multi-User Shared Hallucination}.") == "games"
    assert foldoc.category("\n   Kristensen <olmadsen@daimi.aau.dk>, 1983.") == ""
    assert foldoc.clean_entry(title, body) == (
        "*LISP: StarLISP <language, parallel> (StarLISP) A data-parallel extension of "
        "Common LISP. Mail <info@tmc.com>."
    )


def test_jargon_and_devil_clean_up():
    raw = "ABEND\n /a´bend/, /@·bend´/, n.\n\n    [ABnormal END]\n\n    1. Abnormal {crash}.\n"
    assert jargon.clean_entry(raw) == "ABEND: n. [ABnormal END] 1. Abnormal crash."
    no_grammar = "hack\n    See /usr/bin/hack/ now.\n"
    assert jargon.clean_entry(no_grammar) == "hack: See /usr/bin/hack/ now."
    assert devil.clean_entry("ABRACADABRA.\n\n    By _Abracadabra_ we signify") == (
        "ABRACADABRA. By Abracadabra we signify"
    )


# --- Bible, Perl FAQ, Debian ----------------------------------------------------------------

BIBLE_OUTPUT = """\

Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void;
    and darkness was upon the face of the deep.

1 Samuel 3

  4 That the LORD called Samuel: and he answered, Here am I.
"""


def test_bible_output_parsing():
    verses = list(bible.parse_bible_output(BIBLE_OUTPUT))
    assert verses == [
        ("Genesis", 1, 1, "In the beginning God created the heaven and the earth."),
        (
            "Genesis",
            1,
            2,
            "And the earth was without form, and void; and darkness was upon the face of the deep.",
        ),
        ("1 Samuel", 3, 4, "That the LORD called Samuel: and he answered, Here am I."),
    ]


PERLFAQ_POD = """\
=head1 NAME

perlfaq4 - Data Manipulation

=head1 Data: Numbers

=head2 Why is int() broken?

Your C<int()> is most probably working just fine. See L<perlfunc/int> and
L<the sprintf docs|perlfunc/sprintf>; compare with C<< $a <=> $b >> and C<$x E<gt> 1>.

=over 4

=item How do I convert hexadecimal into decimal

    print hex("0xDEADBEEF");

=back

=head2 How do I round?

Use B<I<sprintf>>.

=head1 AUTHOR AND COPYRIGHT

Copyright (c) 1997-2010 Tom Christiansen.
"""


def test_perlfaq_items_and_pod_codes():
    items = list(perlfaq.split_items(PERLFAQ_POD))
    assert [q for q, _ in items] == ["Why is int() broken?", "How do I round?"]
    assert "Copyright" not in items[1][1]
    first = text.clean(perlfaq.pod_to_text(items[0][1]))
    assert first == (
        "Your int() is most probably working just fine. See perlfunc/int and the sprintf docs; "
        'compare with $a <=> $b and $x > 1. How do I convert hexadecimal into decimal print hex("0xDEADBEEF");'
    )
    assert text.clean(perlfaq.pod_to_text(items[1][1])) == "Use sprintf."


PACKAGES_LIST = """\
Package: 0ad
Version: 0.0.26-3
Section: games
Description: Real-time strategy game of ancient warfare
Description-md5: d943033bedada21853d2ae54a2578a7b

Package: python3-foo
Section: contrib/python
Description-md5: 11111111111111111111111111111111

Package: python3-foo-doc
Section: doc
Description-md5: 11111111111111111111111111111111

Package: nodesc
Section: libs
Description-md5: 22222222222222222222222222222222
"""
TRANSLATION_LIST = """\
Package: 0ad
Description-md5: d943033bedada21853d2ae54a2578a7b
Description-en: Real-time strategy game of ancient warfare
 0 A.D. is a free, open-source, cross-platform
 real-time strategy (RTS) game.
 .
 This package contains the game.

Package: python3-foo
Description-md5: 11111111111111111111111111111111
Description-en: foo for Python 3
"""


def test_debian_descriptions_join_on_md5(tmp_path):
    (tmp_path / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_text(
        PACKAGES_LIST
    )
    (tmp_path / "deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en").write_text(
        TRANSLATION_LIST
    )
    assert debian_packages.available(tmp_path)
    assert list(debian_packages.parse_packages(PACKAGES_LIST))[1] == (
        "python3-foo",
        "python",
        "11111111111111111111111111111111",
    )
    records = list(debian_packages.iter_debian(tmp_path))
    assert records == [
        {
            "id": "debian:0ad",
            "text": "0ad: Real-time strategy game of ancient warfare. 0 A.D. is a free, "
            "open-source, cross-platform real-time strategy (RTS) game. This package contains "
            "the game.",
            "source": "debian",
            "label": "games",
        },
        {
            "id": "debian:python3-foo",  # the shared description once, under its first package
            "text": "python3-foo: foo for Python 3",
            "source": "debian",
            "label": "python",
        },
    ]


# --- the builder on fake sources (runs anywhere) --------------------------------------------


def _fake_source(name: str, rows: list[tuple[str, str]]) -> build.Source:
    def read():
        for n, (body, label) in enumerate(rows):
            yield {"id": f"{name}:{n}", "text": body, "source": name, "label": label}

    return build.Source(name, read, lambda: True, (), "apt-get install nothing")


@pytest.fixture
def fake_sources(monkeypatch):
    animals = [(f"animal text number {i} about beasts", "animal") for i in range(30)]
    plants = [(f"plant text number {i} about leaves", "plant") for i in range(30)]
    shared = [("a text that both sources hold, exactly", "")]
    monkeypatch.setitem(build.SOURCES, "alpha", _fake_source("alpha", animals + plants + shared))
    monkeypatch.setitem(
        build.SOURCES,
        "beta",
        _fake_source(
            "beta",
            [(f"beta record {i} of some length", "b") for i in range(40)]
            + shared
            + [("animal text number 3 about beasts", "b"), ("too short", "b")],
        ),
    )
    return ("alpha", "beta")


def test_sources_read_once_parses_each_source_once_and_hands_out_copies(monkeypatch):
    """A bench reads a target's source for its task and again for the pool: parsed once."""
    monkeypatch.setattr(build, "_read_once", None)  # outside the test session's block
    calls = []
    rows = [(f"text {i} long enough to keep", "x") for i in range(5)]
    inner = _fake_source("alpha", rows)
    src = build.Source("alpha", lambda: (calls.append(1), inner.read())[1], lambda: True, (), "")
    assert len(list(src.records())) == 5 and len(list(src.records())) == 5
    assert len(calls) == 2  # no block: every read parses
    with build.sources_read_once():
        first = list(src.records())
        first[0]["text"] = "changed by a caller"
        with build.sources_read_once():  # reentrant: the outer block's memory serves
            again = list(src.records())
        other = list(_fake_source("alpha", rows[:2]).records())  # same name, another reader
    assert len(calls) == 3  # one parse for the whole block
    assert again[0]["text"] == rows[0][0] and again == list(inner.read())  # copies, unchanged
    assert len(other) == 2
    assert build._read_once is None  # released with the outermost block
    list(src.records())
    assert len(calls) == 4


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_builder_holds_the_slice_out_caps_dedups_and_repeats(tmp_path, fake_sources):
    kwargs = dict(sources=fake_sources, max_per_source=25, target="alpha:animal", target_size=10)
    a = build.build_corpora(tmp_path / "a", **kwargs)
    build.build_corpora(tmp_path / "b", **kwargs)
    for name in ("pool.jsonl", "target.jsonl", "heldout.jsonl", "build.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    pool, target, heldout = (_read_jsonl(p) for p in (a.pool_path, a.target_path, a.heldout_path))
    assert (a.target_count, a.heldout_count) == (10, 20) and len(target) == 10
    assert a.counts == {"alpha": 25, "beta": 25}
    slice_texts = {r["text"] for r in target + heldout}
    assert not slice_texts & {r["text"] for r in pool}  # beta's copy of an animal text too
    assert not {r["id"] for r in target + heldout} & {r["id"] for r in pool}
    assert all(r["label"] == "animal" for r in target + heldout)
    assert len({r["text"] for r in pool}) == len(pool)
    info = json.loads(a.info_path.read_text())
    assert info["sources"]["beta"]["same_text_as_target"] == 1
    assert info["sources"]["beta"]["too_short"] == 1
    assert info["duplicates_dropped"] == 1  # the text both sources hold: alpha's copy wins
    other = build.build_corpora(tmp_path / "c", **{**kwargs, "seed": 1})
    assert other.pool_path.read_bytes() != a.pool_path.read_bytes()


def test_builder_errors_name_the_fix(tmp_path, fake_sources, monkeypatch):
    with pytest.raises(TunesiftError, match="SOURCE:LABEL"):
        build.build_corpora(tmp_path, sources=fake_sources, target="alpha")
    with pytest.raises(TunesiftError, match="unknown corpus source 'nope'"):
        build.build_corpora(tmp_path, sources=["nope"], target="alpha:animal")
    with pytest.raises(TunesiftError, match=r"alpha labels include: animal \(30\)"):
        build.build_corpora(tmp_path, sources=fake_sources, target="alpha:fungus")
    missing = build.Source(
        "gamma", iter, lambda: False, ("dict-gamma",), "apt-get install dict-gamma"
    )
    monkeypatch.setitem(build.SOURCES, "gamma", missing)
    with pytest.raises(TunesiftError, match="gamma .apt-get install dict-gamma"):
        build.build_corpora(tmp_path, sources=["alpha", "gamma"], target="alpha:animal")


# --- a small real build ----------------------------------------------------------------------

needs_debian = pytest.mark.skipif(
    not build.sources_available(),
    reason="Debian corpora not installed (scripts/setup.sh installs: "
    + ", ".join(sorted({p for s in build.SOURCES.values() for p in s.packages}))
    + "; and apt-get update -o Acquire::Languages=en)",
)


@pytest.fixture(scope="module")
def real_builds(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpora")
    kwargs = dict(max_per_source=200, target="gcide:Zool.", target_size=100, seed=0)
    return build.build_corpora(out / "a", **kwargs), build.build_corpora(out / "b", **kwargs)


@needs_debian
def test_real_build_is_deterministic(real_builds):
    a, b = real_builds
    for pa, pb in ((a.pool_path, b.pool_path), (a.target_path, b.target_path)):
        assert pa.read_bytes() == pb.read_bytes()
    assert a.heldout_path.read_bytes() == b.heldout_path.read_bytes()
    assert a.info_path.read_bytes() == b.info_path.read_bytes()


@needs_debian
def test_real_build_holds_the_target_slice_out_of_the_pool(real_builds):
    a, _ = real_builds
    pool, target, heldout = (_read_jsonl(p) for p in (a.pool_path, a.target_path, a.heldout_path))
    assert len(target) == 100 and len(heldout) > 1000
    held = target + heldout
    assert all(r["source"] == "gcide" and r["label"] == "Zool." for r in held)
    assert not {r["text"] for r in held} & {r["text"] for r in pool}
    assert not {r["id"] for r in held} & {r["id"] for r in pool}
    assert not any(r["source"] == "gcide" and r["label"] == "Zool." for r in pool)


@needs_debian
def test_real_build_has_every_source_with_its_labels(real_builds):
    a, _ = real_builds
    pool = _read_jsonl(a.pool_path)
    assert set(a.counts) == set(build.DEFAULT_SOURCES)
    by_source: dict[str, list[dict[str, str]]] = {}
    for r in pool:
        assert set(r) == {"id", "text", "source", "label"} and len(r["text"]) >= 20
        by_source.setdefault(r["source"], []).append(r)
    for name in build.DEFAULT_SOURCES:
        rows = by_source[name]
        assert len(rows) == a.counts[name] == min(200, a.counts[name]) > 0
        assert len({r["id"] for r in rows}) == len(rows)
        assert all(r["id"].startswith(f"{name}:") for r in rows)
        labelled = sum(bool(r["label"]) for r in rows) / len(rows)
        if name in ("fortunes", "wordnet", "bible", "perlfaq", "debian"):
            assert labelled == 1.0, name
        elif name in ("gcide", "foldoc"):
            assert 0.1 < labelled < 1.0, name
        else:
            assert labelled == 0.0, name
    info = json.loads(a.info_path.read_text())
    assert info["debian_packages"]["dict-gcide"]
    assert info["target"]["slice_records"] == a.target_count + a.heldout_count
