"""`python -m chief_of_staff` is the same as the `chief-of-staff` command."""

import sys

from chief_of_staff.cli.main import main

sys.exit(main())
