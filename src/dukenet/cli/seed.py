"""``dukenet seed``: fill a database with a realistic synthetic registry, for demos and benchmarks.

Agents get 1-5 capabilities drawn from a few hundred dotted names (popular names much more
often than rare ones), tags, prices in a few currencies, SLOs, a spread of trust scores and
statuses, and an uptime stretch. Rows go in with ``COPY`` in batches, so 100,000 agents
take seconds rather than minutes. Seeded agents have no private keys: they can be found,
not logged in as.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import random
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dukenet.cli.common import (
    DatabaseUrl,
    DataDir,
    RedisUrl,
    build_settings,
    console,
    friendly_errors,
)
from dukenet.config import Settings
from dukenet.registry.search_cache import invalidate_search_cache
from dukenet.runtime import open_services, prepare_database, start_embedded
from dukenet.store.embedded import EmbeddedServices
from dukenet.store.postgres import Database

# "domain: action action ..." lines: the capability names are domain.action (289 of them).
_NAMES = """
text: summarize classify extract generate rewrite sentiment keywords proofread simplify
  paraphrase moderate embed
translate: text document html subtitles speech glossary detect
image: classify caption generate upscale segment detect ocr moderate compress embed inpaint
audio: transcribe synthesize denoise classify separate diarize
video: transcribe summarize caption detect transcode thumbnail
code: review generate explain test refactor lint translate complete document security-scan
data: clean validate convert dedupe join profile anonymize forecast cluster label
web: fetch scrape search crawl screenshot render monitor
math: solve integrate optimize prove plot simulate
finance: quote forecast risk fraud-detect categorize invoice-extract reconcile tax
geo: geocode reverse-geocode route distance timezone elevation
legal: contract-review clause-extract summarize compliance-check redact
medical: triage code-icd summarize drug-interactions transcribe
search: web news academic patents images semantic rerank
speech: recognize synthesize translate emotion speaker-verify
doc: parse convert ocr classify extract-tables sign compare
email: classify draft summarize spam-detect extract-entities
calendar: schedule availability summarize remind
crm: enrich score-lead dedupe sync
security: scan threat-intel phishing-detect malware-classify audit
chem: predict-property retrosynthesis name-to-structure similarity
bio: align fold annotate variant-call
weather: forecast history alerts nowcast
social: sentiment trend moderate schedule-post
commerce: recommend price-optimize categorize describe-product fraud-check
travel: search-flights search-hotels itinerary visa-check
hr: screen-resume match-jobs interview-questions
edu: quiz grade explain flashcards tutor
iot: anomaly-detect ingest control forecast-load
agent: plan reflect route memory-store memory-recall tool-call
nlp: ner pos-tag coreference parse lemmatize tokenize language-id relation-extract
  question-answer topic-model
ml: train predict explain evaluate tune deploy feature-engineer drift-detect
music: generate transcribe tag separate master recommend
robotics: plan-path grasp calibrate localize simulate
compliance: kyc aml-screen sanctions-check audit-log policy-check
marketing: copywrite segment ab-test seo-audit campaign-plan persona
devops: deploy rollback incident-summarize log-analyze cost-optimize alert-triage capacity-plan
db: query migrate index-advise explain-plan text-to-sql schema-design
news: summarize classify dedupe fact-check headline
support: triage answer escalate sentiment macro-suggest summarize
vision3d: reconstruct depth pose mesh-simplify point-cloud-segment
energy: forecast-demand optimize-grid detect-fault price-forecast
logistics: route-optimize eta pack demand-forecast track
insurance: claim-triage fraud-score underwrite policy-extract
realestate: valuate describe-listing comparables floorplan-parse
pdf: merge split to-text fill-form redact compress
spreadsheet: formula-explain clean pivot chart to-json
chat: respond moderate summarize-thread persona memory
sports: stats predict-outcome highlight-detect commentary
food: recipe-generate nutrition allergen-detect menu-translate
"""


def _words(text: str) -> list[str]:
    return text.split()


CAPABILITY_NAMES = [
    f"{domain}.{action}"
    for domain, actions in re.findall(r"^(\w+): ([^:]+?)(?=^\w+:|\Z)", _NAMES, re.M | re.S)
    for action in actions.split()
]
TAGS = _words("""nlp vision audio fast cheap gpu eu us apac verified beta enterprise open-source
hipaa gdpr soc2 realtime batch multilingual english low-latency high-accuracy research finance
legal medical education ecommerce security startup llm edge green-energy on-prem streaming
experimental certified sla-99.9 managed community""")
ADJECTIVES = _words("""Swift Bright Quiet Clever Nimble Steady Lucid Bold Keen Prime Solar Lunar
Rapid Silent Golden Crimson Azure Polar""")
NOUNS = _words("""Fox Owl Otter Falcon Heron Lynx Badger Raven Panda Wolf Beacon Forge Atlas
Compass Harbor Summit Prism Vector""")
PURPOSES = [
    "summarization", "translation", "vision", "speech", "coding help", "data cleaning",
    "search", "finance", "legal review", "medical coding", "research", "automation",
]  # fmt: skip
QUALITIES = [
    "fast", "accurate", "cheap", "private", "multilingual", "reliable", "batch-friendly",
    "low-latency", "auditable", "well-documented",
]  # fmt: skip

_STRING = {"type": "string"}
_SCHEMAS: dict[str, dict[str, Any]] = {
    "media": {"properties": {"url": {"type": "string", "format": "uri"},
                             "width": {"type": "integer", "minimum": 1}}, "required": ["url"]},
    "audio": {"properties": {"audio_url": _STRING,
                             "sample_rate": {"enum": [8000, 16000, 44100]}},
              "required": ["audio_url"]},
    "rows": {"properties": {"rows": {"type": "array", "items": {"type": "object"}}},
             "required": ["rows"]},
    "place": {"properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                             "lon": {"type": "number", "minimum": -180, "maximum": 180}},
              "required": ["lat", "lon"]},
    "code": {"properties": {"source": _STRING, "language": _STRING}, "required": ["source"]},
    "query": {"properties": {"query": _STRING}, "required": ["query"]},
}  # fmt: skip
_SCHEMA_KIND = {
    "image": "media", "video": "media", "doc": "media", "pdf": "media", "audio": "audio",
    "speech": "audio", "music": "audio", "data": "rows", "crm": "rows", "iot": "rows",
    "finance": "rows", "commerce": "rows", "spreadsheet": "rows", "geo": "place",
    "weather": "place", "travel": "place", "code": "code", "db": "code",
}  # fmt: skip
OUTPUT_SCHEMA = {"type": "object", "properties": {"result": {}}, "required": ["result"]}


def input_schema(domain: str, variant: int) -> dict[str, Any]:
    """A realistic input schema for a capability of ``domain`` (variants differ in limits and
    required fields). Text-like domains take ``{"text": ...}``, some also a ``language``."""
    kind = _SCHEMA_KIND.get(domain)
    if kind is not None:
        return {"type": "object", **_SCHEMAS[kind]}
    properties: dict[str, Any] = {
        "text": {
            "type": "string",
            "minLength": 1,
            "maxLength": (2_000, 20_000, 200_000)[variant % 3],
        }
    }
    required = ["text"]
    if variant % 4 == 1:
        properties["language"] = {"enum": ["en", "fr", "de", "es", "ja"]}
        required.append("language")
    if variant % 5 == 2:
        properties["max_words"] = {"type": "integer", "minimum": 1, "maximum": 2000}
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": variant % 2 == 0}  # fmt: skip


@dataclass
class SyntheticBatch:
    """Rows for the COPY of one batch of agents, in table column order."""

    agents: list[tuple[Any, ...]] = field(default_factory=list)
    capabilities: list[tuple[Any, ...]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    uptime: list[tuple[str, datetime, datetime]] = field(default_factory=list)


AGENT_COLUMNS = (
    "agent_id", "public_key", "display_name", "description", "endpoint_url", "status",
    "created_at", "last_heartbeat", "trust_score", "version", "metadata", "updated_at",
    "status_changed_at", "status_reason",
)  # fmt: skip
CAPABILITY_COLUMNS = (
    "capability_id", "agent_id", "name", "description", "version", "input_schema",
    "output_schema", "deprecated", "pricing_model", "price", "currency", "latency_p99_ms",
    "availability_percent", "created_at", "updated_at",
)  # fmt: skip


def _version(rng: random.Random) -> str:
    major = rng.choices([0, 1, 2, 3], weights=[2, 6, 3, 1])[0]
    version = f"{major}.{rng.randint(0, 12)}.{rng.randint(0, 20)}"
    if rng.random() < 0.05:
        version += rng.choice(["-alpha.1", "-beta.2", "-rc.1"])
    return version


def _price(rng: random.Random) -> tuple[str, Decimal, str]:
    model = rng.choices(["per_call", "subscription", "free"], weights=[60, 15, 25])[0]
    if model == "free":
        return model, Decimal("0.0000"), "USD"
    price = Decimal(str(round(rng.lognormvariate(-3.5, 1.4), 4))).quantize(Decimal("0.0001"))
    price = min(max(price, Decimal("0.0001")), Decimal("999.9999"))
    currency = rng.choices(["USD", "EUR", "GBP"], weights=[80, 15, 5])[0]
    return model, price, currency


def synthetic_batches(
    count: int, *, seed: int = 0, batch_size: int = 2_000, now: datetime | None = None
) -> Iterator[SyntheticBatch]:
    """``count`` synthetic agents (deterministic for a seed), ``batch_size`` at a time."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    weights = [1 / (rank + 1) ** 0.6 for rank in range(len(CAPABILITY_NAMES))]
    names = CAPABILITY_NAMES[:]
    rng.shuffle(names)
    batch = SyntheticBatch()
    for index in range(count):
        raw_key = rng.randbytes(32)
        agent_id = hashlib.sha256(raw_key).hexdigest()
        public_key = base64.b64encode(raw_key).decode()
        display = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {index}"
        description = (
            f"A {rng.choice(QUALITIES)} and {rng.choice(QUALITIES)} agent for "
            f"{rng.choice(PURPOSES)} and {rng.choice(PURPOSES)}."
        )
        created = now - timedelta(seconds=rng.uniform(3_600, 90 * 86_400))
        status = rng.choices(["ACTIVE", "INACTIVE", "SUSPENDED"], weights=[88, 9, 3])[0]
        if status == "ACTIVE":
            beat = now - timedelta(seconds=rng.uniform(0, 60))
        else:
            beat = max(created, now - timedelta(seconds=rng.uniform(600, 30 * 86_400)))
        trust = Decimal(str(round(100 * rng.betavariate(5, 3), 2)))
        suspended = "seeded suspension" if status == "SUSPENDED" else None
        batch.agents.append((
            agent_id, public_key, display, description,
            f"https://agent-{index}.agents.example.net/invoke", status, created, beat, trust,
            f"{rng.randint(0, 3)}.{rng.randint(0, 9)}.0", None, created, created, suspended,
        ))  # fmt: skip
        stretch_start = max(created, beat - timedelta(seconds=rng.uniform(0, 20 * 86_400)))
        batch.uptime.append((agent_id, stretch_start, beat + timedelta(seconds=90)))
        for tag in rng.sample(TAGS, rng.choices([0, 1, 2, 3, 4], weights=[1, 3, 3, 2, 1])[0]):
            batch.tags.append((agent_id, tag))
        chosen = set(rng.choices(names, weights=weights, k=rng.randint(1, 5)))
        for name in sorted(chosen):
            domain = name.split(".", 1)[0]
            version = _version(rng)
            model, price, currency = _price(rng)
            action = name.split(".", 1)[1].replace("-", " ").capitalize()
            text = f"{action} for {domain} workloads, {rng.choice(QUALITIES)} and "
            latency = None if rng.random() < 0.05 else int(rng.lognormvariate(6.5, 0.9)) + 1
            availability = None if rng.random() < 0.05 else round(rng.uniform(90, 99.99), 2)
            batch.capabilities.append((
                hashlib.sha256(f"{agent_id}:{name}:{version}".encode()).hexdigest(),
                agent_id, name, f"{text}{rng.choice(QUALITIES)}.", version,
                input_schema(domain, rng.randint(0, 59)), OUTPUT_SCHEMA,
                rng.random() < 0.05, model, price, currency, latency,
                None if availability is None else Decimal(str(availability)), created, created,
            ))  # fmt: skip
        if len(batch.agents) >= batch_size:
            yield batch
            batch = SyntheticBatch()
    if batch.agents:
        yield batch


def _csv_value(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value) if isinstance(value, Decimal | datetime) else value


def _csv(rows: list[tuple[Any, ...]]) -> io.BytesIO:
    """Rows as CSV for ``COPY ... (FORMAT csv)``; ``None`` becomes an empty field, read back
    as NULL (``FORCE_NULL``: synthetic rows hold no empty strings)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    for row in rows:
        writer.writerow([_csv_value(value) for value in row])
    return io.BytesIO(buffer.getvalue().encode())


async def copy_batch(db: Database, batch: SyntheticBatch) -> None:
    """Write one batch with COPY (CSV), in one transaction."""
    tables: list[tuple[str, list[tuple[Any, ...]], tuple[str, ...]]] = [
        ("agents", batch.agents, AGENT_COLUMNS),
        ("agent_tags", batch.tags, ("agent_id", "tag")),
        ("agent_uptime_intervals", batch.uptime, ("agent_id", "started_at", "ended_at")),
        ("agent_capabilities", batch.capabilities, CAPABILITY_COLUMNS),
    ]
    async with db.transaction() as conn:
        for table, rows, columns in tables:
            if rows:
                await conn.copy_to_table(
                    table, source=_csv(rows), columns=columns, format="csv", force_null=columns
                )


async def seed_registry(
    db: Database,
    count: int,
    *,
    seed: int = 0,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Insert ``count`` synthetic agents; return (agents, capabilities) written."""
    agents = capabilities = 0
    for batch in synthetic_batches(count, seed=seed):
        await copy_batch(db, batch)
        agents += len(batch.agents)
        capabilities += len(batch.capabilities)
        if on_batch is not None:
            on_batch(len(batch.agents), len(batch.capabilities))
    async with db.acquire() as conn:
        # Fresh statistics for the planner; VACUUM also merges the GIN indexes' pending lists.
        await conn.execute(
            "VACUUM (ANALYZE) agents, agent_tags, agent_capabilities, capability_search"
        )
    return agents, capabilities


def register(app: typer.Typer) -> None:
    """Add ``seed`` to the top-level app."""

    @app.command()
    def seed(
        agents: Annotated[int, typer.Option("--agents", min=1, help="How many agents")] = 1_000,
        random_seed: Annotated[
            int | None, typer.Option("--seed", help="Random seed (same seed, same registry)")
        ] = None,
        database_url: DatabaseUrl = None,
        redis_url: RedisUrl = None,
        data_dir: DataDir = None,
    ) -> None:
        """Fill the registry with synthetic agents and capabilities (COPY, in batches)."""
        settings = build_settings(database_url=database_url, redis_url=redis_url, data_dir=data_dir)
        with friendly_errors():
            settings, embedded = start_embedded(settings)
            try:
                chosen = secrets.randbits(32) if random_seed is None else random_seed
                asyncio.run(_seed(settings, embedded, agents, chosen))
            finally:
                if embedded is not None:
                    embedded.stop()


async def _seed(
    settings: Settings, embedded: EmbeddedServices | None, count: int, random_seed: int
) -> None:
    settings = await prepare_database(settings, embedded)
    async with open_services(settings) as services:
        columns = (
            TextColumn("[bold]seeding"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("agents · {task.fields[capabilities]:,} capabilities"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("agents", total=count, capabilities=0)
            written = [0]

            def advance(agents: int, capabilities: int) -> None:
                written[0] += capabilities
                progress.update(task, advance=agents, capabilities=written[0])

            total_agents, total_capabilities = await seed_registry(
                services.db, count, seed=random_seed, on_batch=advance
            )
        await invalidate_search_cache(services.cache)
    console.print(
        f"[green]seeded[/] {total_agents:,} agents with {total_capabilities:,} capabilities"
    )
