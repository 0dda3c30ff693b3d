-- randomized differential test, fixed seed (see differential.psql)
\set seed 0.1337
\ir differential.psql
