"""The search on a Ray cluster: cluster files, shared resources, jobs and remote annealing runs.

- :mod:`.files`: launcher YAML and KubeRay manifests, checked against their schemas;
- :mod:`.kuberay`: the fields KubeRay requires of a RayCluster and a RayJob;
- :mod:`.resources`: trial storage and tracking that every node of the cluster must reach;
- :mod:`.jobs`: the search as a Ray job, the job client and the launcher's ``ray up``;
- :mod:`.launch`: what `deft-tune launch` does, checks first;
- :mod:`.remote_ifp`: the annealing test's runs as Ray tasks (`deft-tune ifp --address`).

Each module imports Ray when it is imported: import the one you need.
"""
