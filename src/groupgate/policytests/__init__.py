"""Policy test suites (`groupgate test`): YAML files beside the policies, run in-process.

at        where a value sits in a suite file; strict readers; `SuiteError`
sections  the section type registry (the extension point) and what a case runs against
checks    the `checks` section       purchases  the `purchases` section
suite     finding and validating suite files
runner    running suites on the embedded store, as `serve` answers
report    the text report and JUnit XML
"""

from groupgate.policytests.at import SuiteError
from groupgate.policytests.checks import Checks
from groupgate.policytests.purchases import Purchases
from groupgate.policytests.report import junit, summary, text_report
from groupgate.policytests.runner import Result, run_suites
from groupgate.policytests.sections import Context, Outcome, Section, register, registered
from groupgate.policytests.suite import Loader, Suite, discover

register(Checks())
register(Purchases())

__all__ = [
    "Context",
    "Loader",
    "Outcome",
    "Result",
    "Section",
    "Suite",
    "SuiteError",
    "discover",
    "junit",
    "register",
    "registered",
    "run_suites",
    "summary",
    "text_report",
]
