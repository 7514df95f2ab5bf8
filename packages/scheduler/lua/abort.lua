local out = { builds = {}, jobs = {} }
abortBuild(ARGV[3], ARGV[4], ARGV[5], out)
return {#out.builds, out.builds, out.jobs}
