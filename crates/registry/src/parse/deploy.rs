//! Reads a service's `[services.NAME.deploy]`: what `conductor export` needs to run it on
//! another engine (today its container `image`). `up` never looks at it.

use crate::error::ProblemKind;
use crate::keys;
use crate::spec::{DeploySpec, image_reference_problem};

use super::ctx::Ctx;
use super::walker::Section;

pub(super) fn read_deploy(ctx: &mut Ctx<'_>, section: &Section<'_, '_>) -> DeploySpec {
    section.check_keys(ctx, &keys::DEPLOY);
    let mut spec = DeploySpec::default();
    if let Some(image) = section.word(ctx, "image") {
        match image_reference_problem(image.get_ref()) {
            None => spec.image = Some(image.into_inner()),
            Some(reason) => ctx.report(
                &section.key_path("image"),
                Some(image.span()),
                ProblemKind::InvalidValue {
                    value: image.get_ref().clone(),
                    reason,
                },
                Some(
                    "write an image reference as docker pulls it: [registry[:port]/]path[:tag][@sha256:digest], \
                     lowercase path, like \"ghcr.io/acme/records:1.4\"",
                ),
            ),
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    fn deploy(text: &str) -> (DeploySpec, Vec<String>) {
        read_toml(text, |ctx, root| {
            let section = root.table(ctx, "deploy").expect("a deploy table");
            read_deploy(ctx, &section)
        })
    }

    #[test]
    fn a_good_image_is_kept() {
        let (spec, problems) = deploy("deploy = { image = \"ghcr.io/acme/records:1.4\" }\n");
        assert_eq!(spec.image.as_deref(), Some("ghcr.io/acme/records:1.4"));
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn a_bad_image_and_an_unknown_key_are_placed() {
        let (spec, problems) = deploy("deploy = { image = \"Acme/Records\", imgae = 1 }\n");
        assert_eq!(spec.image, None);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].starts_with(
                "1:36: deploy.imgae: unknown key \"imgae\"\n  help: did you mean \"image\"?"
            ),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with(
                "1:20: deploy.image: \"Acme/Records\" has an uppercase letter in its path"
            ),
            "{problems:#?}"
        );
    }
}
