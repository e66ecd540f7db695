"""The reasoner interface: from the motion analysis and the AU evidence to an explained answer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from assistant.emotions import SCHEME_CLASSES
from assistant.prompts import Expression
from assistant.types import Answer, AUEvidence, MotionAnalysis

T = TypeVar("T")


def last(items: Iterable[T], default: T) -> T:
    """The final item of a stream (the complete text of a streamed answer), `default` when it yields nothing."""
    result = default
    for result in items:  # noqa: B007 - only the last value matters
        pass
    return result


@dataclass
class ReasoningRequest:
    analysis: MotionAnalysis
    evidence: AUEvidence
    lang: str = "en"  # "en" | "zh"
    emotion_options: tuple[str, ...] = SCHEME_CLASSES["5"]
    include_evidence: bool = False  # put the AU evidence line into the VLM prompt (data built with --evidence)
    include_regions: bool = False  # put the region motion table into the prompt as text
    expression: Expression = "micro"  # a long video's spotter finds both; the template reasoner names the kind


@dataclass
class ChatTurn:
    role: str  # "user" | "assistant"
    content: str


@dataclass
class Conversation:
    """What a follow-up question is grounded in: the first analysis and everything said since."""

    request: ReasoningRequest
    answer: Answer
    turns: list[ChatTurn] = field(default_factory=list)


class Reasoner(Protocol):
    name: str

    def stream(self, request: ReasoningRequest) -> Iterator[str]:
        """Yield the answer text as it grows (each item is the text so far)."""

    def answer(self, request: ReasoningRequest) -> Answer:
        """The complete answer, parsed (AUs, emotion, parse status)."""

    def follow_up(self, conversation: Conversation, message: str) -> Iterator[str]:
        """Yield the reply to a follow-up question as it grows."""
