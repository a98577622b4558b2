"""The README's gateway section shows the recipes as they are tested, and links every one."""

from __future__ import annotations

import re

from tests.api.conftest import REPO
from tests.gateways.conftest import RECIPES

README = REPO / "README.md"


def test_readme_nginx_snippet_is_the_tested_recipe() -> None:
    blocks = re.findall(r"```nginx\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the README should show one nginx snippet"
    snippet = blocks[0].strip("\n")
    assert snippet.count("\n") > 10, "the snippet should be the recipe's server block"
    assert snippet in (RECIPES / "nginx.conf").read_text()


def test_readme_links_every_recipe() -> None:
    text = README.read_text()
    recipes = sorted(path.name for path in RECIPES.iterdir() if path.is_file())
    assert recipes, "deploy/gateways/ holds no recipe"
    missing = [name for name in recipes if f"](deploy/gateways/{name})" not in text]
    assert not missing, f"the README does not link {missing}"
