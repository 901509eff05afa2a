"""Every option of every ``smsclub_*`` command says what it does, in a sentence a person reads."""

import pytest
from django.core.management import get_commands, load_command_class

COMMANDS = sorted(name for name, app in get_commands().items() if name.startswith("smsclub_"))


def options_of(name):
    parser = load_command_class("django_smsclub", name).create_parser("manage.py", name)
    own = [a for a in parser._actions if a.dest not in DJANGO_OPTIONS]
    return {
        action.option_strings[0] if action.option_strings else action.dest: action.help
        for action in own
    }


#: The options Django gives every command (--verbosity, --settings, ...).
DJANGO_OPTIONS = {
    "help",
    "version",
    "verbosity",
    "settings",
    "pythonpath",
    "traceback",
    "no_color",
    "force_color",
    "skip_checks",
}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_a_help_text(name):
    for option, text in options_of(name).items():
        assert text and text.strip(), f"{name} {option}"


def test_smsclub_send_wait_reads_right():
    assert options_of("smsclub_send")["--wait"] == "follow until every message is final"
