"""Packaging for the leaderboard server, including its twistd plugin."""

from setuptools import setup

setup(
    name="leaderboard",
    version="0.1.0",
    description="A realtime leaderboard API on Twisted and Klein, with SSE and GRIP push",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=[
        "leaderboard",
        "leaderboard.resources",
        "leaderboard.feed",
        "leaderboard.store",
        # twisted/plugins has no __init__.py (it is Twisted's namespace for drop-ins),
        # so it is listed by hand: this installs leaderboard_plugin.py beside Twisted's own.
        "twisted.plugins",
    ],
    package_data={
        "leaderboard.resources": ["static/*"],
        "twisted.plugins": ["leaderboard_plugin.py"],
    },
    include_package_data=True,
    install_requires=[
        "twisted>=24.7",
        "klein>=24.8",
        "rethinkdb>=2.4.10",
        "gripcontrol>=4.2",
        "treq>=24.9",
        "werkzeug>=3.0",
        "pyjwt>=2.8",
        "prometheus_client>=0.20",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "hypothesis>=6.100",
            "schemathesis>=4.0",
            "playwright>=1.40",
            "matplotlib>=3.8",
        ],
        "lint": ["ruff>=0.5", "mypy>=1.10", "mypy-zope>=1.0"],
    },
    zip_safe=False,
)
