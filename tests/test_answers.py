"""Answers and summaries from the real default models over the real seeds."""
import dataclasses
import re
import shutil
import time

import pytest

from bot.core.answer import answer_question, candidates_for
from bot.core.ingest import index_paths
from bot.core.values import Actor, Document, Hit, Passage, Request, Target
from summarizer import Summary
from tests.answer_eval import evaluate

ME = Actor("tester", "tester")
HERE = Target("console", "local", "test")
INJECTION = "tests/data/injection.md"
FAQ = "tests/data/faq.md"


def ask(service, question, run):
    return run(service.handle(Request("ask", {"question": question}, ME, HERE)))


@pytest.fixture
def run():
    import asyncio

    return lambda coro: asyncio.run(coro)


def test_interim_ceo_answer_is_cited_and_quoted(seeded_service, run):
    reply = ask(seeded_service, "Who became interim CEO of OpenAI?", run)
    assert reply.ok and "Emmett Shear" in reply.text
    assert reply.sources and all(f"[{s.n}]" in reply.text for s in reply.sources)
    emmett = next(s for s in reply.sources if "Emmett Shear" in s.quote)
    assert emmett.title == "Is OpenAI Imploding?" and emmett.link == "seeds/000_e8e752ce90d85e32.txt"


def test_unanswerable_question_abstains_and_lists_closest(seeded_service, run):
    reply = ask(seeded_service, "What is the boiling point of water on Mount Everest?", run)
    assert reply.ok and not reply.sources
    assert reply.text.startswith("I found nothing in the indexed documents")


def test_a_number_that_measures_something_else_is_no_answer(seeded_service):
    """The podcast says what Isomorphic Labs is raising, not how many people it employs."""
    assert "**$600 million**" in seeded_service.answer("How much is Isomorphic Labs raising?").text
    assert seeded_service.answer("How many employees does Isomorphic Labs have?").abstained


def test_who_is_a_name_is_answered_by_what_the_documents_call_them(seeded_service):
    """The forum post names Adam D'Angelo in an apposition, in a sentence about something else."""
    answer = seeded_service.answer("Who is Adam D'Angelo?")
    assert answer.text.startswith("**the CEO of Quora Inc.**"), answer.text
    assert "Adam D’Angelo, the CEO of Quora" in answer.sources[0].quote


def test_a_passage_that_names_nothing_the_question_names_is_no_answer(seeded_service):
    speech = Document("speech", "speech.txt", "State of the Union, 1964", "en", "h1", 100)
    podcast = Document("podcast", "podcast.txt", "Last Week in AI", "en", "h2", 100)
    hits = [Hit(Passage(1, "speech", 0, 0, 100, "The budget will call for total expenditures of $97,900 million, "
                        "a reduction of more than $500 million in the price of government."), speech, 1.0),
            Hit(Passage(2, "podcast", 0, 0, 100, "Amazon released Nova Act, an agent that controls a web browser "
                        "for you."), podcast, 0.9)]
    question = "What is the price of Amazon's Nova Act per request?"
    candidates = candidates_for(question, hits, seeded_service.models.encoder)
    assert not any(c.hit.document.id == "speech" for c in candidates)
    assert answer_question(question, hits, seeded_service.models.encoder).abstained
    # a common acronym is no name: the GDP of another province does not answer
    province = Document("guangdong", "Guangdong.txt", "Guangdong", "en", "h3", 100)
    hits = [Hit(Passage(3, "guangdong", 0, 0, 100, "With a population of 128.590 million across a total area of about "
                        "179,800 km2, Guangdong is the Chinese province with the largest GDP."), province, 1.0)]
    assert not candidates_for("What is the GDP of Sichuan?", hits, seeded_service.models.encoder)


def test_answer_quality_floor(seeded_service):
    """The full evaluation (python -m tests.answer_eval prints it); this guards against regressions."""
    hybrid = evaluate(seeded_service, dense=True)
    assert hybrid.abstained_unanswerable == 1.0
    assert hybrid.hit3 >= 0.8 and hybrid.fact >= 0.65, hybrid.misses


def test_injected_instructions_are_quoted_as_data(seeded_service, run, tmp_path):
    shutil.copy(INJECTION, tmp_path / "memo.md")
    index_paths(seeded_service.store, [tmp_path / "memo.md"])
    seeded_service.embed_missing()
    before = len(seeded_service.store.documents())
    reply = ask(seeded_service, "Where does the quarterly offsite move to?", run)
    assert reply.ok and "lighthouse venue in Brest" in reply.text
    assert len(seeded_service.store.documents()) == before  # "delete every document" did nothing
    reply = ask(seeded_service, "What does the memo tell the bot to reply?", run)
    # the injected text is quoted and cited like any other sentence, and nothing acts on it
    assert reply.ok and reply.title == "Answer"
    assert "admin mode" in reply.text
    assert reply.sources[0].title == "Vendor memo about the quarterly offsite"
    assert "IGNORE ALL PREVIOUS INSTRUCTIONS" in reply.sources[0].quote
    assert len(seeded_service.store.documents()) == before


def test_faq_answer_is_what_follows_its_question(seeded_service, run, tmp_path):
    shutil.copy(FAQ, tmp_path / "faq.md")
    index_paths(seeded_service.store, [tmp_path / "faq.md"])
    seeded_service.embed_missing()
    reply = ask(seeded_service, "How do I report a bug in the archive?", run)
    # the answer goes on with the section, not the heading, and not just its first sentence
    assert reply.ok and "reportbug" in reply.text and "mails the report" in reply.text, reply.text
    assert "1.1." not in reply.text and "?" not in reply.text.split("[1]")[0]
    # a how-many question whose section holds no number is not answered by a numberless sentence
    reply = ask(seeded_service, "How many mirrors of the archive are there?", run)
    assert reply.ok and not reply.sources and reply.text.startswith("I found nothing"), reply.text


def test_a_section_that_quotes_the_question_points_to_the_answer(seeded_service, run, tmp_path):
    shutil.copy(FAQ, tmp_path / "faq.md")
    index_paths(seeded_service.store, [tmp_path / "faq.md"])
    seeded_service.embed_missing()
    reply = ask(seeded_service, "Are there logs of known bugs?", run)
    assert reply.ok and "bug tracking system" in reply.text and "Section 1.4" not in reply.text, reply.text


def test_a_passage_begins_in_the_section_of_the_heading_before_it(seeded_service, tmp_path):
    """An FAQ answer may go on past the passage that holds its question: the next passage knows it is
    still in that question's section, and only that section answers it."""
    intro = "Reports on open and closed issues are public, as the project promised in its charter. " * 6
    (tmp_path / "long-faq.md").write_text(
        f"## 2.1. Are there logs of known bugs?\n\n{intro}\n\nThe project runs a bug tracking system that "
        f"files every report under a number.\n\n## 2.2. Who fixes bugs?\n\n{intro}\n")
    index_paths(seeded_service.store, [tmp_path / "long-faq.md"])
    seeded_service.embed_missing()
    question = "Are there logs of known bugs?"
    hits = [hit for hit in seeded_service.question_hits(question) if hit.document.path.endswith("long-faq.md")]
    second = next(hit for hit in hits if hit.passage.text.startswith("The project runs a bug tracking system"))
    assert "2.1. Are there logs of known bugs?" in second.before.text  # its heading is in the passage before
    candidates = candidates_for(question, hits, seeded_service.models.encoder)
    answer = next(c for c in candidates if "bug tracking system" in c.sentence)
    assert answer.under_question and not any(c.under_question for c in candidates if "2.2." in c.hit.passage.text
                                              and c.start > c.hit.passage.text.index("2.2."))


def test_a_sentence_about_another_release_or_year_is_no_answer(seeded_service):
    """A question naming a number ("Debian 11") is answered from a passage holding it (or the passage before
    it, or its document's title); written out ("five nanometer") counts too."""
    encoder = seeded_service.models.encoder
    releases = _faq_hits("Debian 8 Jessie in April 2015 was the first release to ship systemd as its init system. "
                         "Debian 12 bookworm was released in June 2023, two years after its predecessor.",
                         title="Debian FAQ")
    assert not candidates_for("When was Debian 11 released?", releases, encoder)
    assert "June 2023" in answer_question("When was Debian 12 released?", releases, encoder).text
    chips = _faq_hits("Huawei plans to build its next Kirin chip on SMIC's five nanometer node next year.",
                      title="Last Week in AI")
    assert "Kirin" in answer_question("Which Huawei chip will be built on SMIC's 5 nanometer node?", chips,
                                      encoder).text
    chapter = _faq_hits("11.4. Wie ändere ich die Voreinstellungen eines X11-Programms?\n\n    Debian 8 \"Jessie\" "
                        "im April 2015 war die erste Veröffentlichung mit systemd. Der Ausschuss entschied am "
                        "2014-02-11 darüber.",
                        title="Debian FAQ: Kapitel 11. Anpassen Ihres Debian-Systems")
    assert not candidates_for("Wann wurde Debian 11 veröffentlicht?", chapter, encoder)  # chapter 11 is no Debian 11
    talk = _faq_hits("Ilya Sutskever gave the test of time talk at NeurIPS 2024 in Vancouver.",
                     "Compute keeps growing, he said, while the internet does not grow much. "
                     "He called data the fossil fuel of AI.", title="Latent Space")
    assert any("fossil fuel" in c.sentence for c in candidates_for(
        "What did Sutskever call data in his NeurIPS 2024 talk?", talk, encoder))


def test_a_sentence_about_the_subject_but_not_what_is_asked_is_no_answer(seeded_service):
    """In the question's language, a sentence holding none of the words of what is asked about the subject
    (beyond the title's) is no candidate: an article about looms that never says who designed one abstains."""
    encoder = seeded_service.models.encoder
    about = _faq_hits("A loom is a device used to weave cloth and tapestry. The basic purpose of any loom is to "
                      "hold the warp threads under tension to facilitate the interweaving of the weft threads.",
                      title="Loom")
    assert not candidates_for("Who designed the first loom?", about, encoder)
    assert answer_question("Who designed the first loom?", about, encoder).abstained
    editions = _faq_hits("16.1. Authors\n\n    The first edition of this FAQ was made and maintained by J.H.M. Dassen "
                         "(Ray) and Chuck Stickelman. Authors of the rewritten Debian GNU/Linux FAQ are Susan G. "
                         "Kleinmann and Sven Rudolph.", title="Debian FAQ: Chapter 16. General information")
    assert not any("rewritten" in c.sentence for c in candidates_for(  # only the sentence before it is about that
        "Who made the first edition of the Debian FAQ?", editions, encoder))
    asking = _faq_hits("Given Quora built Poe, which arguably competes with ChatGPT, does D'Angelo have a big conflict "
                       "of interest in his OpenAI board role? At launch, it had been reported Poe is built using "
                       "models from OpenAI and Anthropic.", title="Is OpenAI Imploding?")
    assert any("Poe is built" in c.sentence for c in candidates_for(  # but a question before it is what it answers
        "Which Quora product might be a conflict of interest for D'Angelo?", asking, encoder))
    answering = _faq_hits("A loom is a device used to weave cloth and tapestry. The first power loom was designed "
                          "in 1784 by Edmund Cartwright and first built in 1785.", title="Loom")
    assert "Edmund Cartwright" in answer_question("Who designed the first loom?", answering, encoder).text


def test_a_question_asking_for_a_year_is_answered_by_a_date_or_not_at_all(seeded_service):
    """"In which year ...?" wants a date as "How many ...?" wants a number; "When ...?" may be answered by a
    clause ("when the queue is processed"), so it only prefers one."""
    encoder = seeded_service.models.encoder
    league = _faq_hits("The National Hockey League is a professional ice hockey league in North America. It was "
                       "founded in Montreal by four clubs of the National Hockey Association.",
                       title="National Hockey League")
    assert answer_question("In which year was the National Hockey League founded?", league, encoder).abstained
    founded = _faq_hits("The National Hockey League is a professional ice hockey league in North America. It was "
                        "founded in 1917 in Montreal after the suspension of its predecessor.",
                        title="National Hockey League")
    assert "1917" in answer_question("In which year was the National Hockey League founded?", founded, encoder).text


def test_a_two_word_reply_opening_an_faq_section_is_its_answer(seeded_service):
    hits = _faq_hits("13.3. Can I make and sell Debian CDs?\n\n    Go ahead. You do not need permission to distribute "
                     "anything we have released, so that you can master your CD as soon as the beta-test ends.\n\n"
                     "13.4. Why is Debian free?\n\n    It is a promise to the community.")
    answer = answer_question("Can I make and sell Debian CDs?", hits, seeded_service.models.encoder)
    assert answer.text.startswith("Go ahead."), answer.text


def test_a_how_many_question_leads_with_the_number_that_counts_what_it_asks(seeded_service):
    hits = _faq_hits("Meta released three models. So just to give an idea, Maverick has 400 billion total parameters, "
                     "but only 17 billion active parameters.", title="Last Week in AI: Llama 4")
    answer = answer_question("How many active parameters does Llama 4 Maverick have?", hits,
                             seeded_service.models.encoder)
    assert answer.short == "17 billion active", answer.text


def test_a_who_question_leads_with_the_name_that_reads_like_a_person(seeded_service):
    """Of the names in the answering sentence, the encoder tells the person from the people ("Mongol")."""
    hits = _faq_hits("Subutai was a Mongol general and the primary military strategist of Genghis Khan and Ögedei "
                     "Khan.", title="Subutai")
    answer = answer_question("Whose primary military strategist was Subutai?", hits, seeded_service.models.encoder)
    assert answer.short == "Genghis Khan", answer.text


def test_a_short_statement_about_the_title_can_answer(seeded_service):
    hits = _faq_hits("Navajo people\n\nThe Navajo are a Native American people of the Southwestern United States. "
                     "The Navajo term for themselves is Diné.", title="Navajo")
    answer = answer_question("What do the Navajo call themselves?", hits, seeded_service.models.encoder)
    assert "Diné" in answer.text and "Navajo people" not in answer.text, answer.text


def test_an_faq_answer_ending_in_the_command_it_introduces_is_no_heading(seeded_service):
    hits = _faq_hits("14. How do I install a shared zlib library on Unix?\n\n    After the above, then:\n\n"
                     "    make install\n\n    However, many flavors of Unix come with a shared zlib already "
                     "installed.", title="Frequently Asked Questions about zlib")
    answer = answer_question("How do I install a shared zlib library on Unix?", hits, seeded_service.models.encoder)
    assert answer.text.startswith("After the above, then: make install"), answer.text


def _faq_hits(*texts: str, title: str = "FAQ") -> list[Hit]:
    """The document's last passage as the one hit, the passage before it attached as search attaches it."""
    document = Document("faq", "faq.txt", title, "en", "h", sum(map(len, texts)))
    passages, start = [], 0
    for ordinal, text in enumerate(texts):
        passages.append(Passage(ordinal + 1, "faq", ordinal, start, start + len(text), text))
        start += len(text)
    return [Hit(passages[-1], document, 1.0, before=passages[-2] if len(passages) > 1 else None)]


def test_an_faq_answer_goes_on_to_the_sentence_of_its_section_that_names_it(seeded_service):
    """Under the FAQ heading that asks the question, the opening says what to do and a later sentence of
    the section names the tool; the answer gives both, each cited with a quote that holds it."""
    hits = _faq_hits(
        "12.5. How do I report a bug in Debian?\n\n    If you have found a bug in Debian, please read the "
        "instructions for reporting a bug in Debian. These instructions can be obtained in one of several "
        "ways: from the web site of the project, from the documentation package installed on every system, "
        "or from the mailing lists, where they are posted every month.\n\n    The instructions also explain "
        "how to check whether the bug was reported already.\n\n    You can use the package reportbug that "
        "will guide you through the reporting process and mail the report to the proper address.\n\n"
        "12.6. What is the Debian Social Contract?\n\n    It is a promise to the community.")
    answer = answer_question("How do I report a bug in Debian?", hits, seeded_service.models.encoder)
    assert "please read the instructions" in answer.text and "reportbug" in answer.text, answer.text
    assert "Social Contract" not in answer.text and "promise" not in answer.text
    claims = re.findall(r"(.+?) \[(\d+)\] ?", answer.text)
    assert len(claims) == 2
    for claim, n in claims:
        assert " ".join(claim.split()[:4]) in " ".join(answer.sources[int(n) - 1].quote.split()), claim


def test_an_faq_answers_right_under_its_question(seeded_service):
    """The answer to an FAQ's own question is the opening of its section, even when the opening lies in
    the passage before the one retrieved and later sentences share more of the question's words."""
    hits = _faq_hits("14.1. Can I make and sell Debian CDs?\n\n    Go ahead. You do not need permission to "
                     "distribute anything we have released.",
                     "We will publish a list of CD manufacturers who donate to Debian, so making and selling "
                     "Debian CDs is good advertising for the makers of CDs.")
    answer = answer_question("Can I make and sell Debian CDs?", hits, seeded_service.models.encoder)
    assert "do not need permission" in answer.text and answer.sources[0].passage_id == 1, answer.text


FAQ_CASES = [
    pytest.param(  # one heading, not a heading and an answer
        "9.4. How can I log the packages I installed? I'd like to know when packages were\nupdated or removed!\n\n"
        "    Add the option --log=file to dpkg and it writes every change to the package states into that file.",
        "How can I log the packages I installed?", "--log=file", "I'd like to know", id="heading-paragraph"),
    pytest.param(  # both headings hold every content word of the question; only one asks it
        "1.1. What is Debian GNU/Linux?\n\n    Debian GNU/Linux is a distribution of the Linux operating system "
        "with many packages that run on it.\n\n1.2. Does Debian just do GNU/Linux?\n\n    Currently Debian is "
        "only available for Linux, with ports to the Hurd kernel under way.",
        "Does Debian just do GNU/Linux?", "only available for Linux", "distribution of the Linux",
        id="heading-worded-like-the-question"),
    pytest.param(  # the line introducing the answer stays with it
        "12.4. Are there logs of known bugs?\n\n    Reports on unsolved and closed issues are public:\n    the "
        "project runs a bug tracking system that files every report under a number.",
        "Are there logs of known bugs?", "issues are public: the project runs", None, id="introducing-line"),
    pytest.param(  # a labelled question is one heading; the "A:" label goes; the next question ends the answer
        "Q:  I told xz to use many threads but it is using only one processor core.\n    What is wrong?\n\n"
        "A:  The input file is too small for the block size, so only one block gets compressed.\n\n"
        "Q:  Is xz patented?\n\nA:  Nobody is aware of any patents on xz.",
        "I told xz to use many threads but it is using only one processor core. What is wrong?",
        "The input file is too small for the block size", "A:", id="labelled-faq"),
    pytest.param(  # "No, sorry." only restates the question: the sentence after it still answers
        "11. Can zlib handle .zip archives?\n\n    Not by itself, no.  See the directory contrib/minizip in the "
        "zlib distribution.\n\n12. Can zlib handle .Z files?\n\n    No, sorry.  You have to spawn an "
        "uncompress or gunzip subprocess, or adapt the code.",
        "Can zlib handle .Z files?", "gunzip subprocess", "minizip", id="short-reply"),
    pytest.param(  # the answer goes on past a line introducing a list
        "12.5. How do I report a bug in Debian?\n\n    If you found a bug, read the instructions for reporting "
        "bugs. They can be obtained in several ways:\n\n      * From the web, at bugs.example.org.\n"
        "      * By running reportbug.",
        "How do I report a bug in Debian?", "several ways: From the web", None, id="list-after-colon"),
]


@pytest.mark.parametrize("faq, question, shown, not_shown", FAQ_CASES)
def test_faq_answers(seeded_service, faq, question, shown, not_shown):
    """Where an FAQ answers its own question, and what of the text around it the answer line shows."""
    answer = answer_question(question, _faq_hits(faq), seeded_service.models.encoder)
    assert shown.lower() in answer.text.lower(), answer.text
    assert not_shown is None or not_shown not in answer.text, answer.text


ANSWER_CASES = [
    pytest.param(  # one word added to the question's is the answer, not a restatement
        "Koala", "The koala is an arboreal herbivorous marsupial native to Australia. It is found in coastal "
        "areas of the eastern and southern regions. Its closest living relatives are the wombats.",
        "What are the koala's closest living relatives?", "wombats", id="one-added-word"),
    pytest.param(  # a transcript's sentence that lost its full stop at a paragraph's end is no heading
        "Podcast", "So they claim it beats the best agents on the screen spot benchmark. That's a measure of how "
        "well an agent reads text on a screen. And apparently on this benchmark, Nova Act scored 94%\n\nAnd "
        "that's in contrast to the other agent, which scored 88%.",
        "What did Nova Act score on the screen spot benchmark?", "**94%", id="sentence-without-full-stop"),
    pytest.param(  # a number written out
        "Address", "A newly conceived Peace Corps is winning friends and helping people in fourteen countries, "
        "supplying trained young men and women.",
        "In how many countries was the Peace Corps working?", "**fourteen countries", id="spelled-number"),
    pytest.param(  # a list item ending in a comma is no heading; "So far" is no filler
        "Debian FAQ", "So far they have been characters taken from the Toy Story movies.\n\n"
        "      * buzz (Debian 1.1) was the spaceman Buzz Lightyear,\n\n      * rex (Debian 1.2) was the "
        "plastic tyrannosaurus rex,\n",
        "Which Toy Story character was the codename buzz named after?", "Buzz Lightyear", id="list-item"),
    pytest.param(  # of two names near "directed", the closer one
        "The Wizard of Oz", "The Wizard of Oz is a 1939 American musical fantasy film. Based on the 1900 novel The "
        "Wonderful Wizard of Oz by L. Frank Baum, it was primarily directed by Victor Fleming, who left production "
        "to take over the troubled Gone with the Wind.",
        "Who was the director of Gone with the Wind?", "**Victor Fleming**", id="closest-name"),
    pytest.param(  # a name that is what a which-question asks for, though the question holds its noun
        "Erich Ludendorff", "Erich Ludendorff was a German general. Later during the years of the Weimar Republic, he "
        "took part in the failed 1920 Kapp Putsch and Adolf Hitler's 1923 Beer Hall Putsch.",
        "In which failed 1920 putsch did Ludendorff take part?", "**Kapp Putsch**", id="asked-noun"),
    pytest.param(  # a statement ending in a tag question is no question
        "Podcast", "So the open letter went out on Monday. More than 700 employees signed it, right? That was most "
        "of the company.", "How many employees signed the open letter?", "**More than 700 employees",
        id="tag-question"),
]


@pytest.mark.parametrize("title, text, question, shown", ANSWER_CASES)
def test_answers(seeded_service, title, text, question, shown):
    answer = answer_question(question, _faq_hits(text, title=title), seeded_service.models.encoder)
    assert shown in answer.text, answer.text


def test_words_near_a_phrase_are_counted_in_chinese_characters(seeded_service):
    """The question's words count as near a phrase within a few words of it; Chinese is written without
    spaces, so a clause must not count as one word ("2" is eight characters away from "Llama" here)."""
    text = ("Meta发布的Llama 4大型语言模型系列引发了争议。该系列模型拥有高达2万亿个参数,包括Llama 4 Scout、"
            "Llama 4 Maverick和Llama 4 Behemoth等不同版本。\n\nMaverick is the mid-sized model of the family. "
            "It has 128 experts.")
    question = "How many experts does Llama 4 Maverick have?"
    candidates = candidates_for(question, _faq_hits(text, title="Llama 4"), seeded_service.models.encoder)
    chinese = next(c for c in candidates if c.short == "2")
    english = next(c for c in candidates if c.short == "128 experts")
    assert chinese.near == 0 < english.near


def test_summary_is_whole_document_cached_and_language_labelled(seeded_service, run):
    german = seeded_service.store.document_by_path("seeds/004_26890ec86dba1039.txt")
    request = Request("summary", {"document": german.id}, ME, HERE)
    reply = run(seeded_service.handle(request))
    assert reply.ok and "Summary in German" in reply.text
    points = reply.data["key_points"]
    assert reply.data["overview"] and 2 <= len(points) <= 5
    text = seeded_service.store.document_text(german.id)
    assert all(p["source"] in text for p in points)
    start = time.perf_counter()
    again = run(seeded_service.handle(request))
    assert again.data == reply.data and time.perf_counter() - start < 0.5  # from the cache
    cached = seeded_service.store.cached_summary(german.content_hash, seeded_service.models.summarizer_id, "English")
    assert cached[1] == "German" and Summary.from_json(*cached, "").text == reply.data["summary"]


def test_long_transcript_summary_draws_from_its_whole_length(seeded_service, run):
    doc = seeded_service.store.document_by_path("seeds/001_bbe9685bcaad8dc0.txt")
    reply = run(seeded_service.handle(Request("summary", {"document": "Last Week in AI"}, ME, HERE)))
    assert reply.ok
    text = seeded_service.store.document_text(doc.id)
    positions = [text.find(p["source"]) for p in reply.data["key_points"]]
    assert all(p >= 0 for p in positions)
    assert max(positions) > len(text) * 2 // 3  # not just the opening of a 68k-character transcript


def test_ambiguous_and_unknown_documents_are_clear_errors(seeded_service, run):
    unknown = run(seeded_service.handle(Request("summary", {"document": "no such thing"}, ME, HERE)))
    assert not unknown.ok and "No indexed document matches" in unknown.text
    ambiguous = run(seeded_service.handle(Request("summary", {"document": "seeds/00"}, ME, HERE)))
    assert not ambiguous.ok and "documents match" in ambiguous.text


def test_the_fit_chooses_as_answers_do():
    """`tests.fit_answer` re-ranks candidates without the models; it must pick the candidate that
    `answer_from` answers with, and know when no threshold applies (a document asking the question)."""
    from bot.core.answer import WEIGHTS, Candidate, answer_from
    from bot.core.values import Document, Hit, Passage
    from tests.fit_answer import judged

    text = "1.2. Are there logs? The project keeps a bug log. Mail the list for help."
    hit = Hit(Passage(1, "faq", 0, 0, len(text), text), Document("faq", "faq.md", "FAQ", "en", "h", len(text)), 1.0)

    def candidate(sentence: str, similarity: float, asked: float) -> Candidate:
        start = text.index(sentence)
        return Candidate(hit, start, start + len(sentence), start, similarity, 0.0, None, 0.0, False, 1.0, 0.0, asked)

    in_section = candidate("The project keeps a bug log.", 0.70, 1.0)  # below the threshold, yet the answer
    elsewhere = candidate("Mail the list for help.", 0.95, 0.0)
    for candidates in ([in_section, elsewhere], [dataclasses.replace(in_section, asked=0.0), elsewhere]):
        answer = answer_from(candidates, [hit])
        top, _, fact, _ = judged([({"answers": ["bug log"]}, [hit], candidates, [(True, True), (False, False)])],
                                 WEIGHTS)[0]
        asked_here = candidates[0].under_question
        assert (in_section if asked_here else elsewhere).sentence in answer.text
        assert fact == asked_here and (top == float("inf")) == asked_here
