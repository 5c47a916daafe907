"""The tests' entry to the program runner (it lives in components/ because the offline render uses it too)."""

from components.program_run import (  # noqa: F401
    MOCK_GENERATED_PASSWORD,
    MOCK_GENERATED_PRIVATE_KEY,
    MOCK_GENERATED_PUBLIC_KEY,
    PROJECT_ROOT,
    CapturedResource,
    ProgramRun,
    run_program,
)
