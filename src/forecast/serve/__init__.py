"""`forecast serve`: the signed-in web view over the months `forecast score --catch-up` wrote.

users (the account store: argon2 hashes, failed sign-ins, the audit log, in one SQLite file),
auth (sessions, CSRF tokens, the sign-in throttle), views (what one reader may see of one
month: the report's own roll-ups, words and charts over the reader's teams, cut by
`forecast.report.scope`), live (what-ifs answered from the engine fits stored with the pair,
in a worker process of their own), context (what every route shares: who asks, which month
and team they may see, the sign-in, cached page parts), app (the FastAPI application, security
headers, errors), api (the JSON API of the contract's section 5), pages, templates/, static/.

Reads output folders and, for what-ifs, the data and the registered pair; never trains, never
writes under the scored ROOT, never carries an employee id or name in a response. May import
report, scoring, mlops, whatif and the layers below; never commands or cli (import-linter).
"""
