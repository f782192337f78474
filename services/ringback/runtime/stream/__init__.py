"""The stream runtime every consuming role runs on: a driver for consume → process → produce/store →
commit-after-acknowledgement → drain, with the broker behind a small backend and each role a step.

Modelled on Sentry's arroyo: a step (``Strategy``) states what it has finished (``committable``); the
driver alone talks to the consumer, commits only what the step reports finished, rewinds what the step
could not take (``RetryLater``: an infrastructure failure — broker or ClickHouse unreachable, timeouts),
holds back what the step refuses for now (``Hold``), and keeps the group membership alive while the step
pushes back. Input the step cannot use is the step's business: it goes to the dead-letter topic (the
normalizer) or the dead-letter table (the sink), never back to the driver.
"""
