"""Trust errors: the ``dukenet.errors`` tree with rating-, flag- and proof-specific codes."""

from __future__ import annotations

from dukenet.errors import AlreadyExists, Forbidden, InvalidInput, InvalidState, NotFound


class AgentNotFound(NotFound):
    """No registered agent has this id (the registry's code, for the same situation)."""

    code = "AGENT_NOT_FOUND"
    title = "Agent not found"


class TaskNotFound(NotFound):
    """The rated task does not exist."""

    code = "TASK_NOT_FOUND"
    title = "Task not found"


class FlagNotFound(NotFound):
    """No fraud flag has this id."""

    code = "FRAUD_FLAG_NOT_FOUND"
    title = "Fraud flag not found"


class SelfRating(Forbidden):
    """An agent may not rate itself."""

    code = "SELF_RATING"
    title = "Self-rating not allowed"


class NotTaskCreator(Forbidden):
    """Only the agent that created a task may rate the agents that worked on it."""

    code = "NOT_TASK_CREATOR"
    title = "Not the task's creator"


class TaskNotCompleted(InvalidState):
    """Only a COMPLETED task can be rated."""

    code = "TASK_NOT_COMPLETED"
    title = "Task not completed"


class RatingWindowClosed(InvalidState):
    """The task completed too long ago to be rated."""

    code = "RATING_WINDOW_CLOSED"
    title = "Rating window closed"


class AgentNotInTask(InvalidInput):
    """The rated agent completed no subtask of the task."""

    code = "AGENT_NOT_IN_TASK"
    title = "Agent did not work on the task"


class RatingExists(AlreadyExists):
    """This rater already rated this agent for this task."""

    code = "RATING_EXISTS"
    title = "Rating exists"


class FlagAlreadyCleared(InvalidState):
    """The fraud flag was already cleared."""

    code = "FRAUD_FLAG_CLEARED"
    title = "Fraud flag already cleared"


class OwnerAddressMissing(InvalidState):
    """The agent has no owner_address to prove."""

    code = "OWNER_ADDRESS_MISSING"
    title = "No owner address"


class OwnerProofInvalid(InvalidInput):
    """The EIP-191 signature does not recover to the agent's owner address."""

    code = "OWNER_PROOF_INVALID"
    title = "Owner proof invalid"
