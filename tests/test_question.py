"""Question analysis, answer phrases, sentence splitting and filler trimming (no models)."""
import pytest

from bot.core.question import (DATE, DEFINITION, ENTITY, LIST, NUMBER, ORGANISATION, PERSON, PLACE, YES_NO, analyse,
                               numbers_in, phrases, stem)
from summarizer.text import split_sentences, trim_fillers


@pytest.mark.parametrize("question, kind", [
    ("How long is the context window of Llama 4 Scout?", NUMBER),
    ("What valuation is Runway raising at?", NUMBER),
    ("What is the GDP of Sichuan?", NUMBER),
    ("What is the default compression level of gzip?", NUMBER),
    ("What is the melting point of calcium chloride?", NUMBER),
    ("What is the point of the testing distribution?", DEFINITION),  # a point with no dimension is no number
    ("Zu welchem Zeitpunkt friert Debian ein?", ENTITY),
    ("Wie viele Mitarbeiter haben den Brief unterschrieben?", NUMBER),
    ("When did Amazon acquire Twitch?", DATE),
    ("In what year was the treaty signed?", DATE),
    ("Who was the director of Gone with the Wind?", PERSON),
    ("Wer wurde Interims-CEO von OpenAI?", PERSON),
    ("Who is Adam D'Angelo?", DEFINITION),
    ("Who was Stephen Hawking's doctoral advisor?", PERSON),
    ("Which company did Emmett Shear run?", ORGANISATION),
    ("Where is the offsite moving to?", PLACE),
    ("In which country is Phnom Penh?", PLACE),
    ("What are the Llama 4 model variants called?", LIST),
    ("Why did the board fire Altman?", DEFINITION),
    ("Is Debian free software?", YES_NO),
    ("Which man first walked on the moon?", PERSON),
    ("Mit welchem Programm meldet man einen Fehler in Debian?", ENTITY),  # German "man" is no person
])
def test_question_kind(question, kind):
    assert analyse(question).kind == kind


@pytest.mark.parametrize("question, language", [
    ("Welche Ordnungszahl hat Helium?", "de"),
    ("In welcher Stadt wurde die OPEC gegründet?", "de"),
    ("Wer war Sid in Toy Story?", "de"),
    ("Gibt es unterschiedliche Versionen eines Pakets in unterschiedlichen Distributionen?", "de"),
    ("Who composed Der Ring des Nibelungen?", "en"),
    ("Who won the war of 1812?", "en"),
])
def test_a_short_question_is_told_by_its_question_words(question, language):
    """Its language decides which of its words a passage in another language can be held to."""
    assert analyse(question).language == language


def found(question: str, sentence: str, language: str = "en") -> list[str]:
    return [sentence[a:b] for a, b in phrases(sentence, analyse(question), language)]


def test_phrases_of_the_wanted_kind_that_the_question_lacks():
    assert found("How long is the context window of Llama 4 Scout?",
                 "It has a 10 million token context window, which is huge.") == ["10 million token"]
    assert "Victor Fleming" in found("Who was the director of Gone with the Wind?",
                                     "It was produced by David O. Selznick and directed by Victor Fleming.")
    # the noun a which-question asks for may be part of the answer
    assert found("Into which sea does the Syr Darya flow?", "It flows through Uzbekistan into the Aral Sea.") == [
        "Uzbekistan", "Aral Sea"]
    assert analyse("In which failed 1920 putsch did Ludendorff take part?").noun == "putsch"
    assert found("Who made the first edition?", "It was made by J.H.M. Dassen (Ray).") == ["J.H.M. Dassen", "Ray"]
    assert found("When did Amazon acquire Twitch?", "Twitch was acquired by Amazon in August 2014.") == ["August 2014"]
    # a duration is no date; a time relative to another is
    assert found("When did Huygens invent the clock?", "For 300 years it was the most accurate clock; "
                 "two years later he built one.") == ["two years later"]
    # a name the question already holds is not an answer; neither is a number it already holds
    assert found("Who replaced Sam Altman?", "Sam Altman was replaced by Emmett Shear.") == ["Emmett Shear"]
    assert found("How many experts does Llama 4 Maverick have?", "Llama 4 Maverick has 128 experts.") == ["128 experts"]


@pytest.mark.parametrize("question, sentence, described", [
    pytest.param("Who is Adam D'Angelo?", "Murati is negotiating with Adam D’Angelo, the CEO of Quora Inc., who "
                 "represents the board.", ["the CEO of Quora Inc."], id="apposition"),
    pytest.param("Who was Stephen Hawking?", "Stephen William Hawking (8 January 1942 – 14 March 2018) was an "
                 "English theoretical physicist, cosmologist and author.", ["an English theoretical physicist"],
                 id="definition with a middle name and dates"),
    pytest.param("Wer ist Mira Murati?", "Das sagte Mira Murati, CTO von OpenAI, am Montag.", ["CTO von OpenAI"],
                 id="apposition without article"),
    pytest.param("Who is Mira Murati?", "Das twitterten Mira Murati (CTO von OpenAI) und Jakub Pachocki.",
                 ["CTO von OpenAI"], id="a role in parentheses"),
    pytest.param("Wer ist Emmett Shear?", "Altman wurde mit Emmett Shear, der aus der Streaming-Ecke kommt, ersetzt; "
                 "Emmett Shear, der frühere Twitch-CEO, sagte nichts.", ["der frühere Twitch-CEO"],
                 id="a German relative clause says what he did"),
    pytest.param("What is Nova Act?", "Episode: Nova Act, xAI buys X, PaperBench. Their first act is Nova Act, "
                 "which is an AI agent that can control a web browser.", ["an AI agent that can control a web browser"],
                 id="a thing, and not a list of titles"),
    pytest.param("Wer war Sid in Toy Story?", "sid was the neighbor kid who broke all toys.",
                 ["the neighbor kid who broke all toys"], id="a name written in lower case"),
    pytest.param("Who is Sam Altman?", "Sam Altman, Greg Brockman and Ilya Sutskever met; Sam Altman, who was "
                 "fired, left.", [], id="neither a list nor a relative clause says who"),
])
def test_who_is_a_name_is_answered_by_what_a_sentence_calls_it(question, sentence, described):
    assert found(question, sentence) == described


@pytest.mark.parametrize("question, sentence, numbers", [
    pytest.param("How many employees does Isomorphic Labs have?", "Isomorphic Labs is raising $600 million "
                 "from 3 investors.", ["3 investors"], id="a count is no sum of money"),
    pytest.param("How many member countries did OPEC have in 1975?", "OPEC holds 79.5 percent of the reserves "
                 "and has 11 member countries.", ["11 member"], id="a count is no percentage"),
    pytest.param("What percentage of the reserves does OPEC hold?", "OPEC holds 79.5 percent of the reserves "
                 "and has 11 member countries.", ["79.5 percent"], id="a percentage"),
    pytest.param("How much money did SPI receive?", "SPI, a 501(c)(3) organisation, received $2 million "
                 "from 40 donors.", ["$2 million"], id="a sum of money"),
    pytest.param("Wie viel Umsatz machte OpenAI?", "OpenAI machte mehr als 10 Mrd. Umsatz mit 700 "
                 "Mitarbeitern.", ["mehr als 10 Mrd. Umsatz"], id="a sum in German"),
    pytest.param("How many dollars did the plan cost?", "The plan cost $900 for 12 people.", ["$900"],
                 id="counting dollars asks a sum"),
    pytest.param("How long did the address last?", "Tonight marks the 10th and last address, 62 minutes long.",
                 ["62 minutes"], id="an ordinal is no quantity"),
    pytest.param("How many GPUs did Meta use?", "Maverick fits on one H100 GPU; Meta trained it on 32,000 H100 GPUs.",
                 ["32,000 H100"], id="a number inside a name is no quantity"),
    pytest.param("How many parameters do the models have?", "该系列模型拥有高达2万亿个参数。", ["2"],
                 id="a number in Chinese text"),
    pytest.param("By how much did Kennedy increase the defense budget?", "He increased the budget by 15 percent.",
                 ["15 percent"], id="a change may be a percentage"),
    pytest.param("How many children did Napoleon III have?", "He was Emperor from 1852 until 1870.", [],
                 id="a year is no count"),
    pytest.param("How many papers does PaperBench ask agents to replicate?", "The best agent, Claude 3.5 Sonnet, "
                 "replicated 21% of 20 ICML papers.", ["20 ICML"], id="a version inside a name is no quantity"),
    pytest.param("How many papers does PaperBench ask agents to replicate?", "So this is 20 ICML 2024 spotlight "
                 "and oral papers.", ["20 ICML"], id="a year after a name is part of it"),
    pytest.param("How many employees signed the letter?", "Das Fundraising sollte OpenAI in Richtung 80/90 "
                 "Milliarden Dollar treiben; 490 Mitarbeiter unterschrieben.", ["490 Mitarbeiter"],
                 id="a range of two numbers is one amount"),
    pytest.param("How many people posted it?", "Das twitterten/x-ten mittlerweile Mira Murati und 500 andere.",
                 ["500 andere"], id="a number word inside a word is none"),
    pytest.param("In how many countries was the Peace Corps working?", "The Peace Corps was helping people in "
                 "fourteen countries.", ["fourteen countries"], id="a number written out"),
    pytest.param("What yield does TSMC get on its 5 nanometer node?", "SMIC makes five nanometer chips at a yield "
                 "of 30 percent.", ["30 percent"], id="a number the question names, written out, is no answer"),
    pytest.param("What was the thrust of the first stage?", "Thirteen vehicles flew; the first stage gave 35,100 kN "
                 "of thrust.", ["35,100 kN"], id="a force in its unit"),
    pytest.param("What is the average lifespan of a whale shark?", "An individual of 18.8 m was recorded; whale "
                 "sharks live about 80 years.", ["about 80 years"], id="a time, not a length"),
    pytest.param("What is the melting point of iron?", "Iron, element 26, melts at 1,538 °C.", ["1,538"],
                 id="a temperature with its unit after it"),
    pytest.param("Wie hoch ist der Schmelzpunkt von Eisen?", "Eisen hat 4 Isotope und schmilzt bei 1538 Grad.",
                 ["1538 Grad"], id="a temperature in German"),
    pytest.param("What is the mass of the Andromeda Galaxy?", "Andromeda lies 2.5 million light-years away and has "
                 "a mass of 1.5 trillion solar masses.", ["1.5 trillion solar"], id="a mass"),
    pytest.param("What is the area of Yellowstone National Park?", "Its highest peak rises 3,462 metres; the park "
                 "spans 8,983 km2.", ["8,983 km2"], id="an area, not a height"),
    pytest.param("How tall can a date palm grow?", "The genus holds 12 species; date palms grow up to 23 m tall.",
                 ["up to 23 m tall"], id="a height"),
    pytest.param("How far away is the Orion Nebula?", "The Orion Nebula, one of 110 Messier objects, lies "
                 "1,344 ± 20 light-years away.", ["1,344"], id="a distance whose unit follows an uncertainty"),
    pytest.param("What is the average speed of the solar wind?", "At 0 °C (32 °F), sound travels at 331 m/s.",
                 ["331 m/s"], id="a speed, not a temperature"),
])
def test_a_number_answers_only_when_it_measures_what_the_question_asks(question, sentence, numbers):
    assert found(question, sentence) == numbers


@pytest.mark.parametrize("question, measure", [
    ("What is the boiling point of water at sea level?", "temperature"),
    ("What is the average lifespan of a whale shark?", "time"),
    ("What is the area of Yellowstone National Park?", "area"),
    ("What is the area code of Berlin?", None),  # the noun names something else
    ("How tall can a date palm grow?", "length"),
    ("Wie weit ist Timbuktu vom Niger entfernt?", "length"),
    ("How fast does the solar wind blow?", "speed"),
    ("How long did the war last?", None),  # a time or a length
    ("What is the metropolitan area population of Paris?", None),
    ("How many days did the mission last?", "count"),
])
def test_the_dimension_a_question_asks_for(question, measure):
    assert analyse(question).measure == measure


@pytest.mark.parametrize("question, numbers", [
    ("Wann wurde Debian 11 veröffentlicht?", {"11"}),
    ("How many member countries did OPEC have in 1975?", {"1975"}),
    ("Which codename was used for Debian release 3.0?", set()),  # a version with a point is no whole number
    ("I told xz to use many threads but it uses only one or two cores. What is wrong?", set()),
])
def test_the_numbers_a_question_names(question, numbers):
    assert analyse(question).numbers == numbers


@pytest.mark.parametrize("question, needs", [
    ("How many employees signed the letter?", True),
    ("In which year was Nizhny Novgorod founded?", True),
    ("In welchem Jahr wurde Debian begonnen?", True),
    ("On what date did Meta release Llama 4?", True),
    ("When was the IAEA established?", True),  # a past event has a date
    ("From when to when did Robert Walpole serve as prime minister?", True),
    ("When is an integer even?", False),  # a condition
    ("When should I upgrade to testing?", False),
    ("Who founded Amazon?", False),
])
def test_a_number_or_a_year_is_needed_where_the_question_asks_for_one(question, needs):
    assert analyse(question).needs_phrase is needs


def test_what_a_how_many_question_counts():
    assert analyse("How many active parameters does Llama 4 Maverick have?").counted == {"activ", "parame"}
    assert analyse("In how many countries was the Peace Corps working?").counted == {"countr"}
    assert analyse("Who founded Amazon?").counted == set()


def test_the_words_of_what_is_asked():
    assert analyse("Who designed the first loom?").asked_words == {"design", "first", "loom"}
    assert analyse("Whom did Juan Carlos I marry?").asked_words == {"marry"}  # names and numbers are not
    assert analyse("When was Debian 11 released?").asked_words == {"releas"}


def test_stems_meet_across_irregular_past_forms():
    assert stem("took") == stem("take") == stem("taken") and stem("wrote") == stem("write") == stem("written")
    assert stem("founded") == stem("founder") != stem("find")  # "found" is not taken for "find"


def test_numbers_in_digits_or_written_out():
    assert numbers_in("SMIC's five nanometer node, 2025 at the latest") == {"5", "2025"}
    assert numbers_in("Zwölf Apostel und elf Freunde") == {"12", "11"}
    assert numbers_in("fivefold, someone") == set()
    assert numbers_in("X11-Programme auf H100-GPUs, beschlossen am 2014-02-11") == {"2014"}  # names, a date's day


def test_german_names_need_two_words_where_every_noun_is_capitalised():
    sentence = "Für Microsoft-CEO Nadella wäre es ein gelungener Coup, sagt Mira Murati."
    names = found("Who said it?", sentence, "de")
    assert "Mira Murati" in names and not any("Coup" in name or name == "Für" for name in names)
    assert found("Wie viele Mitarbeiter unterschrieben?", "Der Brief wurde von mehr als 490 Mitarbeitern "
                 "unterzeichnet.", "de") == ["mehr als 490 Mitarbeitern"]


@pytest.mark.parametrize("text, sentences", [
    ("It was produced by David O. Selznick and directed by Victor Fleming. It stars Vivien Leigh.", 2),
    ("Dr. Smith paid $3.5 billion. The U.S. economy grew.", 2),
    ("The first edition was made by J.H.M. Dassen (Ray) and Chuck Stickelman. Then Santiago Vila took over.", 2),
    ("The first edition of this FAQ was made and maintained by J.H.M.\n    Dassen (Ray) and Chuck Stickelman.", 1),
    ("Am 19. November 2023 kam es zu Gesprächen, z. B. mit Microsoft. Dann kam Altman.", 2),
    ("Selbst wenn Microsoft die Investition von 10 Mrd. USD abschreiben müsste, hat sie sich gelohnt. Gut.", 2),
    ("Apples, pears, etc. and more. OK? Yes!", 3),
    # hard-wrapped FAQ text: a numbered heading, then a paragraph whose lines are not sentences
    ("6.1. How many Debian distributions are there?\n\n    There are three major distributions: the stable\n"
     "    distribution, the testing distribution, and the unstable one. Next to\n"
     "    these, there is the experimental distribution.\n", 3),
    # a command set on a line of its own ends the sentence that introduces it; a list does not
    ("To see what is installed, execute the command\n\n    dpkg --list\n\n    This prints one line per package.", 2),
    ("Remove a package with the command:\n\n    dpkg --remove foo\n\nThen clean up.", 2),
    ("To find the package, execute either:\n\n  * dpkg --search foo\n\n  * apt-file search foo\n", 3),
    ("## What Ilya Sees in 2024\n\n**Pre-training as we know it will end.**\n", 2),  # a heading introduces no command
])
def test_sentences_survive_initials_abbreviations_decimals_and_dates(text, sentences):
    assert len(split_sentences(text)) == sentences


def test_an_introduced_command_is_the_end_of_its_sentence():
    text = "To see what is installed, execute the command\n\n    dpkg --list\n\n    This prints one line per package."
    assert split_sentences(text)[0].split()[-2:] == ["dpkg", "--list"]


@pytest.mark.parametrize("spoken, written", [
    ("So, and that's the Llama 4 Scout.", "That's the Llama 4 Scout."),
    ("Yeah, it's about this write up.", "It's about this write up."),
    ("It's, it's a 10 million token context window, you know, which is huge.",
     "It's a 10 million token context window, which is huge."),
    ("Well.", "Well."),
    # written openings that only look like fillers stay
    ("So far they have been characters from Toy Story.", "So far they have been characters from Toy Story."),
    ("Like most codenames, it comes from a film.", "Like most codenames, it comes from a film."),
    ("Right now the archive holds 60,000 packages.", "Right now the archive holds 60,000 packages."),
    ("Like, the model is big.", "The model is big."),
])
def test_trim_fillers(spoken, written):
    assert trim_fillers(spoken) == written
