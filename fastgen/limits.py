"""Every limit a model option must keep, and why (issue 8: no silent wrong data, no
tracebacks). ``fastgen.config`` validates against them."""

from __future__ import annotations

import datetime

# int32 columns (store_id, product_id, quantity, version in fastgen/schema.py).
INT32_MAX = 2**31 - 1
# A run's sale ids are run * rows_per_day + i + 1 in int64: 2**31 rows times the ~3 million
# runs the calendar holds stay far below 2**63.
MAX_ROWS_PER_DAY = INT32_MAX
# Rows held in memory at once while writing a file: measured ~200 B a row at peak (two runs
# of 10M-row files: 2.3 GB RSS), so 2**25 rows take ~7 GB and two workers fit in 24 GiB.
MAX_ROWS_IN_MEMORY = 2**25
# The model builds an alias table and a price per product (and a table per store): measured
# ~26 B an entry, so 10M stores and 10M products take ~0.5 GB and ~2 s to build.
MAX_STORES = 10_000_000
MAX_PRODUCTS = 10_000_000
# Rank 2 has weight 2**-100 ~ 1e-30 of rank 1 at skew 100: beyond, every sale is rank 1 anyway.
MAX_SKEW = 100.0
# One peak per hour of the day is plenty; the mixture costs ~1k erf calls per peak.
MAX_RUSH_PEAKS = 24
# A peak with sigma of a day is flat over the day to 1e-8 (the wrapped Gaussian's first
# Fourier term is exp(-2 pi^2 sigma^2 / 24^2)), and the wrap sums ~10 sigma / 24 days.
MAX_RUSH_SIGMA_HOURS = 24.0
# The original generator's bound; a million units of one product in one sale is already absurd.
MAX_QUANTITY = 1_000_000
# Money columns of fastgen/schema.py in cents: decimal(p, 2) holds up to 10**p - 1 cents.
PRICE_MAX_CENTS = 10**10 - 1  # unit_price decimal(10, 2): 99,999,999.99
AMOUNT_MAX_CENTS = 10**12 - 1  # amount decimal(12, 2): 9,999,999,999.99
# At steepness 100 the sigmoid goes from 1% to 99% within 0.1 day: a step; more changes nothing.
MAX_STEEPNESS = 100.0
# The bound kept from before: a non-negative int64, which every tool that reads fastgen.json
# holds exactly (fastgen/kernels/random.py mixes the seed into 64-bit keys).
SEED_LIMIT = 2**63
# The original generator's bound: a sale reported more than a year late is not "late".
MAX_LATE_DAYS = 365
# Calendar. The last run's commit_ts is midnight after its day, so the last day a run can
# make is the day before datetime's last one. The first start is a plain, documented choice:
# no loader test needs older data, and targets disagree before it (SQL Server's smalldatetime
# and Excel start at 1900-01-01; pandas' nanosecond timestamps end at 1677).
FIRST_START = datetime.date(1900, 1, 1)
LAST_DAY = datetime.date(9999, 12, 30)
# Longest history the calendar holds; sigmoid offsets beyond it can never take effect.
MAX_HISTORY_DAYS = (LAST_DAY - FIRST_START).days + 1
# Issue 13: "a second (and third) change" of one key in one run.
MAX_CHANGES_PER_RUN = 3
# A transaction open for more than a month is a stuck one, not a late commit.
MAX_LATE_COMMIT_HOURS = 30 * 24.0
