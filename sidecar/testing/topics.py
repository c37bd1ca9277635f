"""Two small vocabularies for traffic that switches topic (drift tests, demos, benchmarks)."""

from __future__ import annotations

import random

SUPPORT = [
    "billing",
    "invoice",
    "refund",
    "charge",
    "payment",
    "card",
    "account",
    "subscription",
    "plan",
    "price",
]
TRAVEL = [
    "flight",
    "hotel",
    "booking",
    "luggage",
    "passport",
    "visa",
    "airport",
    "train",
    "ticket",
    "seat",
]
TOPICS = {"support": SUPPORT, "travel": TRAVEL}


def question(rng: random.Random, words: list[str], length: tuple[int, int]) -> str:
    """A bag-of-words "question" of ``length[0]``-``length[1]`` words from ``words``."""
    return " ".join(rng.choices(words, k=rng.randint(*length)))


# Wide vocabularies for a topic change that word counts miss: each request names one of many
# topic words in the same carrier phrases, so a window holds most topic words once or twice
# (a random re-split of the requests moves them as much as the change does), while every topic
# word sits in one region of embedding space.
MONEY_WIDE = (  # noqa: SIM905 (a word list reads better as text)
    "billing invoice refund charge payment card account subscription plan price fee receipt "
    "balance credit debit overdraft mortgage loan interest deposit withdrawal transfer "
    "wallet bank cheque tax salary wage budget expense cost discount coupon voucher rebate "
    "pension savings investment dividend stock bond insurance premium installment tuition "
    "rent paycheck bonus cashback chargeback statement ledger payroll currency exchange "
    "accountant audit bankruptcy broker collateral creditor debt deductible donation escrow "
    "expenditure finance fundraiser grant income inflation invoicing lender liability "
    "lottery margin mortgagee pawnshop penalty pricing profit refinancing remittance revenue "
    "royalty shareholder stipend subsidy surcharge taxpayer treasury"
).split()
TRAVEL_WIDE = (  # noqa: SIM905 (a word list reads better as text)
    "flight hotel booking luggage passport visa airport train ticket seat cruise airline "
    "boarding layover itinerary hostel resort motel suitcase backpack customs embassy "
    "terminal runway departure arrival destination sightseeing tourist vacation holiday "
    "journey voyage railway station taxi ferry rental shuttle excursion camping beach island "
    "mountain trek safari museum landmark souvenir border roadtrip honeymoon aeroplane "
    "backpacker bus caravan checkin chalet coach compartment concierge countryside detour "
    "embarkation expedition gondola guidebook hiking inn jetlag lodge lounge monorail "
    "motorway ocean pilgrimage platform porter reservation route sailing scenery skiing "
    "subway tour tram travelogue trip villa wanderlust"
).split()
CARRIERS = (
    "hello there, i have a quick question about my {} and would like some help",
    "can you please help me sort out the {} before the end of the week",
    "something seems to be wrong with my {} today and i do not know why",
    "what would you suggest i do about the {} in this situation",
    "could you tell me a little more about the {} options you have",
    "i need some honest advice on a {} as soon as you can",
    "my friend told me to ask you about the {} so here i am",
    "is there anything i should know about the {} before i decide",
)


def carrier_question(rng: random.Random, words: list[str]) -> str:
    """One carrier phrase naming one topic word: the words around it do not tell the topic."""
    return rng.choice(CARRIERS).format(rng.choice(words))
