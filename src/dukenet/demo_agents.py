"""Small real agents for ``dukenet demo``: each is an ``AgentServer`` process on localhost.

    python -m dukenet.demo_agents summit --network http://127.0.0.1:8080 --port 9101 \\
        --key summit.pem

| agent            | capabilities                  | price (USD)    | notes                    |
|------------------|-------------------------------|----------------|--------------------------|
| Lexicon Labs     | text.normalize, text.keywords | 0.0020, 0.0050 |                          |
| Summit Summaries | text.summarize                | 0.0100         | thorough, takes ~3 s     |
| Relay Recaps     | text.summarize                | 0.0150         | the fallback summarizer  |
| Mood Metrics     | text.sentiment                | 0.0040         | long job: 202 + callback |
| Quill & Co       | report.compose                | 0.0080         | the fan-in               |

The text processing is deliberately simple and deterministic (no models, no network).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dukenet.sdk import AgentServer, Result


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _word_set(
    """a an and are as at be but by for from has have in into is it its of on or our so
    that the their them they this to was were will with we you your than then there these
    those which who what when where while also can not no more most very such each all any
    been being over under between about after before across per out up down"""
)
POSITIVE = _word_set(
    """good great excellent fast faster reliable robust secure trusted growth improve
    improved improves success successful benefit benefits gain gains strong clear easy
    efficient win wins verified open"""
)
NEGATIVE = _word_set(
    """bad poor slow slower unreliable fragile insecure risk risks failure failures fail
    fails loss losses weak unclear hard costly outage outages fraud broken"""
)

TEXT = {"type": "string", "minLength": 1, "maxLength": 100_000}
TEXT_IN = {
    "type": "object",
    "properties": {"text": TEXT},
    "required": ["text"],
}


def sentences(text: str) -> list[str]:
    """Sentences of a text, split after ., ! or ?."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def words(text: str) -> list[str]:
    """Lowercase words of a text."""
    return re.findall(r"[a-z][a-z'-]*", text.lower())


def keywords_of(text: str, count: int = 5) -> list[str]:
    """The most frequent non-stopwords, ties broken alphabetically."""
    frequency = Counter(w for w in words(text) if w not in STOPWORDS and len(w) > 2)
    return [w for w, _ in sorted(frequency.items(), key=lambda item: (-item[1], item[0]))][:count]


def summary_of(text: str, length: int = 2) -> str:
    """The first sentence plus the sentences that carry the most keywords, in text order."""
    all_sentences = sentences(text)
    if len(all_sentences) <= length:
        return " ".join(all_sentences)
    top = set(keywords_of(text, 8))
    scored = sorted(
        range(1, len(all_sentences)),
        key=lambda i: (-sum(w in top for w in words(all_sentences[i])), i),
    )
    chosen = sorted([0, *scored[: length - 1]])
    return " ".join(all_sentences[i] for i in chosen)


def lexicon_labs(network: str, key: Path) -> AgentServer:
    """Text normalization and keyword extraction, cheap and fast."""
    agent = AgentServer(
        "Lexicon Labs",
        network_url=network,
        key=key,
        description="Text clean-up and keyword extraction.",
        tags=["nlp", "demo"],
        version="1.0.0",
    )

    @agent.capability(
        "text.normalize",
        input_schema=TEXT_IN,
        output_schema={
            "type": "object",
            "properties": {"text": TEXT, "sentences": {"type": "integer"}},
            "required": ["text", "sentences"],
        },
        price="0.0020",
        latency_p99_ms=500,
    )
    async def normalize(input: dict[str, Any]) -> dict[str, Any]:
        """Collapse whitespace and count sentences."""
        text = " ".join(input["text"].split())
        return {"text": text, "sentences": len(sentences(text))}

    @agent.capability(
        "text.keywords",
        input_schema=TEXT_IN,
        output_schema={
            "type": "object",
            "properties": {"keywords": {"type": "array", "items": {"type": "string"}}},
            "required": ["keywords"],
        },
        price="0.0050",
        latency_p99_ms=500,
    )
    async def keywords(input: dict[str, Any]) -> dict[str, Any]:
        """The five most frequent meaningful words."""
        await asyncio.sleep(0.4)
        return {"keywords": keywords_of(input["text"])}

    return agent


SUMMARY_OUT = {
    "type": "object",
    "properties": {"summary": TEXT},
    "required": ["summary"],
}


def summit_summaries(network: str, key: Path) -> AgentServer:
    """The preferred summarizer: cheaper, but it takes its time (the demo kills it mid-call)."""
    agent = AgentServer(
        "Summit Summaries",
        network_url=network,
        key=key,
        description="Careful extractive summaries.",
        tags=["nlp", "demo"],
        version="2.1.0",
    )

    @agent.capability(
        "text.summarize",
        input_schema=TEXT_IN,
        output_schema=SUMMARY_OUT,
        price="0.0100",
        latency_p99_ms=8000,
    )
    async def summarize(input: dict[str, Any]) -> dict[str, Any]:
        """Two-sentence extractive summary."""
        await asyncio.sleep(3.0)
        return {"summary": summary_of(input["text"])}

    return agent


def relay_recaps(network: str, key: Path) -> AgentServer:
    """A second summarizer offering the same capability: the failover target."""
    agent = AgentServer(
        "Relay Recaps",
        network_url=network,
        key=key,
        description="Quick extractive recaps.",
        tags=["nlp", "demo"],
        version="1.4.0",
    )

    @agent.capability(
        "text.summarize",
        input_schema=TEXT_IN,
        output_schema=SUMMARY_OUT,
        price="0.0150",
        latency_p99_ms=8000,
    )
    async def summarize(input: dict[str, Any]) -> Result:
        """Two-sentence extractive summary, charged below list price for short texts."""
        await asyncio.sleep(0.5)
        text = input["text"]
        return Result({"summary": summary_of(text)}, cost="0.0120" if len(text) < 2000 else None)

    return agent


def mood_metrics(network: str, key: Path) -> AgentServer:
    """Lexicon-based sentiment as a long job: answers 202, posts the result later."""
    agent = AgentServer(
        "Mood Metrics",
        network_url=network,
        key=key,
        description="Sentiment scoring (asynchronous).",
        tags=["nlp", "demo"],
        version="0.9.0",
    )

    @agent.capability(
        "text.sentiment",
        input_schema=TEXT_IN,
        output_schema={
            "type": "object",
            "properties": {
                "label": {"enum": ["positive", "negative", "neutral"]},
                "score": {"type": "number", "minimum": -1, "maximum": 1},
            },
            "required": ["label", "score"],
        },
        price="0.0040",
        latency_p99_ms=5000,
        long_running=True,
    )
    async def sentiment(input: dict[str, Any]) -> dict[str, Any]:
        """Positive minus negative words, scaled to [-1, 1]."""
        await asyncio.sleep(1.0)
        found = words(input["text"])
        positive = sum(w in POSITIVE for w in found)
        negative = sum(w in NEGATIVE for w in found)
        score = 0.0 if positive + negative == 0 else (positive - negative) / (positive + negative)
        label = "positive" if score > 0.2 else "negative" if score < -0.2 else "neutral"
        return {"label": label, "score": round(score, 3)}

    return agent


def quill_and_co(network: str, key: Path) -> AgentServer:
    """Composes the final brief from the other agents' work (the fan-in)."""
    agent = AgentServer(
        "Quill & Co",
        network_url=network,
        key=key,
        description="Report composition.",
        tags=["writing", "demo"],
        version="3.0.0",
    )

    @agent.capability(
        "report.compose",
        input_schema={
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "summary": {"type": "string"},
                "keywords": {"type": "array", "items": {"type": "string"}},
                "sentiment": {"type": "string"},
                "sentences": {"type": "integer"},
            },
            "required": ["title", "summary", "keywords", "sentiment"],
        },
        output_schema={
            "type": "object",
            "properties": {"report": {"type": "string"}},
            "required": ["report"],
        },
        price="0.0080",
        latency_p99_ms=1000,
    )
    async def compose(input: dict[str, Any]) -> dict[str, Any]:
        """A short brief: title, summary, keywords and tone."""
        lines = [
            f"# {input['title']}",
            input["summary"],
            f"Keywords: {', '.join(input['keywords'])}",
            f"Tone: {input['sentiment']}"
            + (f" (over {input['sentences']} sentences)" if "sentences" in input else ""),
        ]
        return {"report": "\n".join(lines)}

    return agent


# -- the work the demo gives them --------------------------------------------------------

ARTICLE = (
    "DukeNET is an open network for software agents. Agents prove who they are with an "
    "Ed25519 key and publish what they can do, with schemas and prices. Clients submit "
    "tasks; the network splits them into subtasks, picks trusted agents, retries failures "
    "and fails over to another agent when one goes down. Payments are held in escrow and "
    "settled only for verified work, so the market stays fair and efficient. Every step "
    "is recorded in a signed audit trail that anyone can verify with standard IPFS tools, "
    "which makes the network transparent and reliable."
)
BRIEF_OUTPUT = {
    "type": "object",
    "properties": {
        "report": {"type": "string"},
        "summary": {"type": "string"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "sentiment": {"type": "string"},
    },
    "required": ["report", "summary", "keywords", "sentiment"],
}


def brief_task(title: str, text: str) -> dict[str, Any]:
    """A task that fans out and back in: normalize → (summarize | keywords | sentiment) →
    compose, with ``$ref`` inputs and an output assembled from three subtasks."""
    normalized = {"$ref": "normalize#/text"}
    return {
        "name": "dukenet-brief",
        "description": "A brief written by five agents.",
        "priority": "HIGH",
        "deadline": (datetime.now(UTC) + timedelta(minutes=2)).isoformat(),
        "timeout_seconds": 60,
        "cost_limit": "0.1000",
        "max_retries": 3,
        "backoff_strategy": "fixed",
        "tags": ["demo"],
        "input_schema": {
            "type": "object",
            "properties": {"title": {"type": "string"}, "text": {"type": "string"}},
            "required": ["title", "text"],
        },
        "output_schema": BRIEF_OUTPUT,
        "input": {"title": title, "text": text},
        "subtasks": [
            {
                "name": "normalize",
                "capability": "text.normalize",
                "input": {"text": {"$ref": "task#/text"}},
            },
            {
                "name": "summarize",
                "capability": "text.summarize",
                "depends_on": ["normalize"],
                "input": {"text": normalized},
                "constraints": {"max_price": "0.0200"},
                "output_mapping": {"/summary": "/summary"},
            },
            {
                "name": "keywords",
                "capability": "text.keywords",
                "depends_on": ["normalize"],
                "input": {"text": normalized},
                "output_mapping": {"/keywords": "/keywords"},
            },
            {
                "name": "sentiment",
                "capability": "text.sentiment",
                "depends_on": ["normalize"],
                "input": {"text": normalized},
                "output_mapping": {"/sentiment": "/label"},
            },
            {
                "name": "compose",
                "capability": "report.compose",
                "depends_on": ["summarize", "keywords", "sentiment"],
                "input": {
                    "title": {"$ref": "task#/title"},
                    "summary": {"$ref": "summarize#/summary"},
                    "keywords": {"$ref": "keywords#/keywords"},
                    "sentiment": {"$ref": "sentiment#/label"},
                    "sentences": {"$ref": "normalize#/sentences"},
                },
                "output_mapping": {"/report": "/report"},
            },
        ],
    }


AGENTS: dict[str, Callable[[str, Path], AgentServer]] = {
    "lexicon": lexicon_labs,
    "summit": summit_summaries,
    "relay": relay_recaps,
    "mood": mood_metrics,
    "quill": quill_and_co,
}


def main(argv: list[str] | None = None) -> None:
    """Run one demo agent until interrupted."""
    parser = argparse.ArgumentParser(description="Run one of the demo agents.")
    parser.add_argument("agent", choices=sorted(AGENTS))
    parser.add_argument("--network", required=True, help="DukeNET API base URL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--key", type=Path, required=True, help="Key file (created if missing)")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="Heartbeat interval (s)")
    parser.add_argument("--owner-address", help="Ethereum address of the agent's owner")
    args = parser.parse_args(argv)
    agent = AGENTS[args.agent](args.network, args.key)
    agent.heartbeat_interval = args.heartbeat
    agent.owner_address = args.owner_address
    agent.run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
