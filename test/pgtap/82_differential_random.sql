-- randomized differential test, a new seed each run, printed with the result (see differential.psql)
\set seed random
\ir differential.psql
