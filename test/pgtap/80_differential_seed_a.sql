-- randomized differential test, fixed seed (see differential.psql)
\set seed 0.42
\ir differential.psql
